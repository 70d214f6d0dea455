// Plain/gzip/zstd text reading: zlib's gzFile for plain and gzip files (it passes non-gzip bytes
// through unchanged), libzstd's streaming decoder for files that start with the zstd magic.
#include "data/text_file.h"

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <vector>

#include "common/error.h"

namespace moeforge::data {

// The decompressed bytes of one file, read in order.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `size` bytes into `out`; 0 at the end. Throws naming the file on errors.
  virtual size_t read(char* out, size_t size) = 0;
};

namespace {

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(const std::filesystem::path& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) fail("cannot open '", path.string(), "'");
    gzbuffer(file_, 1 << 17);
  }
  ~GzipSource() override { gzclose(file_); }
  size_t read(char* out, size_t size) override {
    const int got = gzread(file_, out, static_cast<unsigned>(size));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file_, &code);
      fail("error reading '", path_.string(), "': ", message ? message : "unknown zlib error");
    }
    return static_cast<size_t>(got);
  }

 private:
  std::filesystem::path path_;
  gzFile file_ = nullptr;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(const std::filesystem::path& path) : path_(path), input_(ZSTD_DStreamInSize()) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) fail("cannot open '", path.string(), "'");
    stream_ = ZSTD_createDStream();
    ZSTD_initDStream(stream_);
  }
  ~ZstdSource() override {
    ZSTD_freeDStream(stream_);
    std::fclose(file_);
  }
  size_t read(char* out, size_t size) override {
    ZSTD_outBuffer o{out, size, 0};
    while (o.pos == 0) {
      if (in_.pos == in_.size) {
        const size_t got = std::fread(input_.data(), 1, input_.size(), file_);
        if (got == 0) {
          if (std::ferror(file_)) fail("error reading '", path_.string(), "'");
          if (!frame_done_) fail("error reading '", path_.string(), "': truncated zstd stream");
          return 0;
        }
        in_ = ZSTD_inBuffer{input_.data(), got, 0};
      }
      const size_t rc = ZSTD_decompressStream(stream_, &o, &in_);
      if (ZSTD_isError(rc)) fail("error reading '", path_.string(), "': ", ZSTD_getErrorName(rc));
      frame_done_ = rc == 0;  // 0: a frame ended exactly here
    }
    return o.pos;
  }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  ZSTD_DStream* stream_ = nullptr;
  std::vector<char> input_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  bool frame_done_ = true;  // an empty file is an empty text
};

bool starts_with_zstd_magic(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  unsigned char magic[4] = {0, 0, 0, 0};
  const size_t got = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return got == 4 && magic[0] == 0x28 && magic[1] == 0xB5 && magic[2] == 0x2F && magic[3] == 0xFD;
}

std::unique_ptr<ByteSource> open_source(const std::filesystem::path& path) {
  if (starts_with_zstd_magic(path)) return std::make_unique<ZstdSource>(path);
  return std::make_unique<GzipSource>(path);
}

}  // namespace

LineReader::LineReader(const std::filesystem::path& path) : path_(path), source_(open_source(path)) {}

LineReader::~LineReader() = default;

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  size_t old = buffer_.size();
  buffer_.resize(old + (1 << 16));
  const size_t got = source_->read(buffer_.data() + old, 1 << 16);
  buffer_.resize(old + got);
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
  auto source = open_source(path);
  std::string out;
  std::vector<char> chunk(1 << 16);
  while (const size_t got = source->read(chunk.data(), chunk.size())) out.append(chunk.data(), got);
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
