// .npy headers and stored (uncompressed) .npz zip archives, Zip64 when sizes or offsets need it.
#include "stats/npz_writer.h"

#include <zlib.h>

#include <fstream>

#include "common/error.h"

namespace moeforge::stats {
namespace {

constexpr uint64_t kMax32 = 0xFFFFFFFFull;

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t crc_of(uint32_t crc, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const size_t n = std::min<size_t>(bytes.size() - done, 1u << 30);
    crc = static_cast<uint32_t>(crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + done), static_cast<uInt>(n)));
    done += n;
  }
  return crc;
}

struct Member {
  std::string name;
  uint32_t crc = 0;
  uint64_t size = 0, offset = 0;
};

}  // namespace

std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string dims = "(";
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  dims += ")";
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + dims + ", }";
  const size_t fixed = 10;  // magic(6) + version(2) + header length(2)
  size_t total = fixed + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  if (dict.size() > 65535) fail("npy header for shape ", dims, " is too long for format 1.0");
  std::string out = "\x93NUMPY";
  out.push_back('\x01');
  out.push_back('\x00');
  put16(out, static_cast<uint16_t>(dict.size()));
  return out + dict;
}

std::string utf32le(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<uint8_t>(text[i]);
    uint32_t cp = 0xFFFD;
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > text.size()) {
      len = 1;
    } else {
      cp = len == 1 ? c : c & (0x7F >> len);
      for (size_t k = 1; k < len; ++k) {
        const auto cc = static_cast<uint8_t>(text[i + k]);
        if ((cc >> 6) != 2) {
          cp = 0xFFFD;
          len = k;
          break;
        }
        cp = (cp << 6) | (cc & 0x3F);
      }
    }
    put32(out, cp);
    i += len;
  }
  return out;
}

void write_npz(const std::filesystem::path& path, const std::vector<NpyArray>& arrays) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) fail(path.string(), ": cannot create file");
  std::vector<Member> members;
  uint64_t offset = 0;
  auto emit = [&](const std::string& bytes) {
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    offset += bytes.size();
  };
  for (const auto& a : arrays) {
    const std::string header = npy_header(a.descr, a.shape);
    Member m{a.name + ".npy", 0, header.size() + a.data.size(), offset};
    m.crc = crc_of(crc_of(0, header), a.data);
    const bool zip64 = m.size >= kMax32;
    std::string local;
    put32(local, 0x04034b50);
    put16(local, zip64 ? 45 : 20);  // version needed
    put16(local, 0);                // flags
    put16(local, 0);                // stored
    put16(local, 0);                // time 00:00
    put16(local, 0x21);             // date 1980-01-01
    put32(local, m.crc);
    put32(local, zip64 ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(m.size));
    put32(local, zip64 ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(m.size));
    put16(local, static_cast<uint16_t>(m.name.size()));
    put16(local, zip64 ? 20 : 0);
    local += m.name;
    if (zip64) {
      put16(local, 1);
      put16(local, 16);
      put64(local, m.size);
      put64(local, m.size);
    }
    emit(local);
    emit(header);
    file.write(a.data.data(), static_cast<std::streamsize>(a.data.size()));
    offset += a.data.size();
    members.push_back(std::move(m));
  }
  const uint64_t cd_offset = offset;
  for (const auto& m : members) {
    const bool big = m.size >= kMax32, far = m.offset >= kMax32;
    std::string extra;
    if (big || far) {
      put16(extra, 1);
      put16(extra, static_cast<uint16_t>((big ? 16 : 0) + (far ? 8 : 0)));
      if (big) put64(extra, m.size), put64(extra, m.size);
      if (far) put64(extra, m.offset);
    }
    std::string cd;
    put32(cd, 0x02014b50);
    put16(cd, 45);  // made by
    put16(cd, big || far ? 45 : 20);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, 0x21);
    put32(cd, m.crc);
    put32(cd, big ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(m.size));
    put32(cd, big ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(m.size));
    put16(cd, static_cast<uint16_t>(m.name.size()));
    put16(cd, static_cast<uint16_t>(extra.size()));
    put16(cd, 0);  // comment
    put16(cd, 0);  // disk
    put16(cd, 0);  // internal attributes
    put32(cd, 0);  // external attributes
    put32(cd, far ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(m.offset));
    emit(cd + m.name + extra);
  }
  const uint64_t cd_size = offset - cd_offset, count = members.size();
  const bool zip64_end = cd_offset >= kMax32 || cd_size >= kMax32 || count >= 0xFFFF;
  std::string end;
  if (zip64_end) {
    const uint64_t record_at = offset;
    put32(end, 0x06064b50);
    put64(end, 44);
    put16(end, 45);
    put16(end, 45);
    put32(end, 0);
    put32(end, 0);
    put64(end, count);
    put64(end, count);
    put64(end, cd_size);
    put64(end, cd_offset);
    put32(end, 0x07064b50);
    put32(end, 0);
    put64(end, record_at);
    put32(end, 1);
  }
  put32(end, 0x06054b50);
  put16(end, 0);
  put16(end, 0);
  put16(end, zip64_end ? 0xFFFF : static_cast<uint16_t>(count));
  put16(end, zip64_end ? 0xFFFF : static_cast<uint16_t>(count));
  put32(end, zip64_end ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(cd_size));
  put32(end, zip64_end ? static_cast<uint32_t>(kMax32) : static_cast<uint32_t>(cd_offset));
  put16(end, 0);
  emit(end);
  file.flush();
  if (!file) fail(path.string(), ": write failed (disk full?)");
}

}  // namespace moeforge::stats
