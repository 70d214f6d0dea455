// Reading text inputs that may be compressed (gzip or zstd, detected by content, not name): a
// line reader with line numbers, whole-file reads, and a UTF-8 validity check.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace moeforge::data {

class LineReader {
 public:
  // Opens `path` (plain, gzip or zstd). Throws naming the file when it cannot be opened.
  explicit LineReader(const std::filesystem::path& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its '\n' (and a trailing '\r'); false at end of file.
  // Throws naming the file on a read/decompression error.
  bool next(std::string& line);
  // 1-based number of the line last returned by next().
  size_t line_number() const { return line_number_; }

 private:
  bool fill();
  std::filesystem::path path_;
  std::unique_ptr<class ByteSource> source_;  // decompressed bytes of the file
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  size_t line_number_ = 0;
};

// The whole (decompressed) contents of a plain, gzip or zstd file.
std::string read_text_file(const std::filesystem::path& path);

// Byte offset of the first invalid UTF-8 sequence (overlongs, surrogates and > U+10FFFF are
// invalid), or std::string_view::npos when `text` is valid.
size_t find_invalid_utf8(std::string_view text);

}  // namespace moeforge::data
