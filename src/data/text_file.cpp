// Plain/gzip text reading through zlib's gzFile (which passes non-gzip files through unchanged).
#include "data/text_file.h"

#include <zlib.h>

#include "common/error.h"

namespace moeforge::data {

LineReader::LineReader(const std::filesystem::path& path) : path_(path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) fail("cannot open '", path.string(), "'");
  gzbuffer(file, 1 << 17);
  file_ = file;
}

LineReader::~LineReader() {
  if (file_) gzclose(static_cast<gzFile>(file_));
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buffer_.size();
  buffer_.resize(old + (1 << 16));
  int got = gzread(static_cast<gzFile>(file_), buffer_.data() + old, 1 << 16);
  if (got < 0) {
    int code = 0;
    const char* message = gzerror(static_cast<gzFile>(file_), &code);
    fail("error reading '", path_.string(), "': ", message ? message : "unknown zlib error");
  }
  buffer_.resize(old + static_cast<size_t>(got));
  if (got == 0) eof_ = true;
  return got > 0;
}

bool LineReader::next(std::string& line) {
  while (true) {
    size_t end = buffer_.find('\n', pos_);
    if (end != std::string::npos) {
      line.assign(buffer_, pos_, end - pos_);
      pos_ = end + 1;
      break;
    }
    if (!fill()) {
      if (pos_ >= buffer_.size()) return false;
      line.assign(buffer_, pos_, std::string::npos);
      pos_ = buffer_.size();
      break;
    }
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_number_;
  return true;
}

std::string read_text_file(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) fail("cannot open '", path.string(), "'");
  std::string out;
  char chunk[1 << 16];
  while (true) {
    int got = gzread(file, chunk, sizeof chunk);
    if (got < 0) {
      int code = 0;
      std::string message = gzerror(file, &code);
      gzclose(file);
      fail("error reading '", path.string(), "': ", message);
    }
    if (got == 0) break;
    out.append(chunk, static_cast<size_t>(got));
  }
  gzclose(file);
  return out;
}

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size(), i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace moeforge::data
