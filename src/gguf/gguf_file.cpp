#include "gguf/gguf_file.h"

#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "io/stale_temps.h"

namespace moeforge {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kVersion = 3;
constexpr uint64_t kAlignment = 32;      // general.alignment's default

// GGUF value type codes.
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

struct Buffer {
  std::string bytes;
  template <typename T>
  void pod(T value) { bytes.append(reinterpret_cast<const char*>(&value), sizeof(T)); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes += s;
  }
};

void encode_value(Buffer& b, const GgufValue& value) {
  std::visit(
      [&b](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, uint32_t>) { b.pod(kU32); b.pod(v); }
        else if constexpr (std::is_same_v<T, int32_t>) { b.pod(kI32); b.pod(v); }
        else if constexpr (std::is_same_v<T, float>) { b.pod(kF32); b.pod(v); }
        else if constexpr (std::is_same_v<T, bool>) { b.pod(kBool); b.pod<uint8_t>(v ? 1 : 0); }
        else if constexpr (std::is_same_v<T, std::string>) { b.pod(kString); b.str(v); }
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          b.pod(kArray); b.pod(kString); b.pod<uint64_t>(v.size());
          for (const auto& s : v) b.str(s);
        } else if constexpr (std::is_same_v<T, std::vector<int32_t>>) {
          b.pod(kArray); b.pod(kI32); b.pod<uint64_t>(v.size());
          for (int32_t x : v) b.pod(x);
        } else {
          b.pod(kArray); b.pod(kF32); b.pod<uint64_t>(v.size());
          for (float x : v) b.pod(x);
        }
      },
      value);
}

uint64_t align_up(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::BF16: return "BF16";
    case GgmlType::MXFP4: return "MXFP4";
  }
  return "?";
}

uint64_t ggml_bytes(GgmlType type, uint64_t elements) {
  switch (type) {
    case GgmlType::F32: return elements * 4;
    case GgmlType::F16:
    case GgmlType::BF16: return elements * 2;
    case GgmlType::Q8_0: return elements / 32 * 34;   // fp16 scale + 32 int8
    case GgmlType::MXFP4: return elements / 32 * 17;  // E8M0 scale + 16 bytes of nibbles
  }
  return 0;
}

void GgufMetadata::set(const std::string& key, GgufValue value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_[key] = entries_.size();
  entries_.emplace_back(key, std::move(value));
}

const GgufValue* GgufMetadata::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

uint64_t GgufTensorDecl::elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

GgufFileWriter::GgufFileWriter(const std::filesystem::path& out, const GgufMetadata& metadata,
                               std::vector<GgufTensorDecl> tensors)
    : out_(out), tensors_(std::move(tensors)) {
  temp_dir_ = std::make_unique<OwnedTempDir>(out_);
  temp_ = temp_dir_->path() / out_.filename();
  file_ = std::fopen(temp_.c_str(), "wb");
  if (!file_) fail(out_.string(), ": cannot create (", std::strerror(errno), ")");
  std::setvbuf(file_, nullptr, _IOFBF, 8 << 20);
  Buffer header;
  header.pod(kMagic);
  header.pod(kVersion);
  header.pod<uint64_t>(tensors_.size());
  header.pod<uint64_t>(metadata.entries().size());
  for (const auto& [key, value] : metadata.entries()) {
    header.str(key);
    encode_value(header, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    header.str(t.name);
    header.pod<uint32_t>(t.dims.size());
    for (uint64_t d : t.dims) header.pod(d);
    header.pod(static_cast<uint32_t>(t.type));
    header.pod(offset);
    offset = align_up(offset + t.bytes());
  }
  write_raw(header.bytes.data(), header.bytes.size());
  pad_to_alignment();
  next_tensor_if_full();
}

GgufFileWriter::~GgufFileWriter() {
  if (file_) std::fclose(file_);
  std::error_code ignored;
  if (!finished_) std::filesystem::remove(temp_, ignored);
  std::filesystem::remove(temp_dir_->path(), ignored);  // empty once the file is renamed or removed
}

void GgufFileWriter::write_raw(const void* data, size_t bytes) {
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    fail(out_.string(), ": write failed (", std::strerror(errno), ")");
  written_ += bytes;
}

void GgufFileWriter::pad_to_alignment() {
  static const char zeros[kAlignment] = {};
  write_raw(zeros, align_up(written_) - written_);
}

// Zero-sized tensors (none today) and a finished tensor move the cursor on, padding between tensors.
void GgufFileWriter::next_tensor_if_full() {
  while (current_ < tensors_.size() && current_written_ == tensors_[current_].bytes()) {
    ++current_;
    current_written_ = 0;
    pad_to_alignment();
  }
}

void GgufFileWriter::append(const void* data, size_t bytes) {
  if (current_ >= tensors_.size() || current_written_ + bytes > tensors_[current_].bytes())
    fail(out_.string(), ": internal error: more bytes than declared for tensor ",
         current_ < tensors_.size() ? tensors_[current_].name : std::string("(none)"));
  write_raw(data, bytes);
  current_written_ += bytes;
  next_tensor_if_full();
}

void GgufFileWriter::finish() {
  if (current_ != tensors_.size())
    fail(out_.string(), ": internal error: tensor ", tensors_[current_].name, " was not written completely");
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0)
    fail(out_.string(), ": write failed (", std::strerror(errno), ")");
  std::fclose(file_);
  file_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(temp_, out_, ec);
  if (ec) fail(out_.string(), ": cannot rename the finished file into place (", ec.message(), ")");
  finished_ = true;
  temp_dir_->release();
}

}  // namespace moeforge
