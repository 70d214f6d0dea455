// Stable 64-bit content hashing: 8-byte words multiplied into a rotating state, finished with the
// splitmix64 finaliser; used for cache keys and deterministic seeded choices.
#include "data/hash.h"

#include <cstring>
#include <fstream>
#include <vector>

#include "common/error.h"

namespace moeforge::data {
namespace {
constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul2 = 0xC2B2AE3D27D4EB4Full;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
}  // namespace

uint64_t mix64(uint64_t z) {
  z += kMul1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Hasher::Hasher(uint64_t seed) : state_(mix64(seed ^ 0x6D6F65666F726765ull)) {}

void Hasher::mix_word(uint64_t word) {
  state_ ^= rotl(word * kMul2, 31) * kMul1;
  state_ = rotl(state_, 27) * 5 + 0x52DCE729;
}

Hasher& Hasher::update(const void* bytes, size_t size) {
  const auto* p = static_cast<const uint8_t*>(bytes);
  length_ += size;
  while (size > 0 && pending_bytes_ != 0) {
    pending_ |= static_cast<uint64_t>(*p++) << (8 * pending_bytes_);
    --size;
    if (++pending_bytes_ == 8) {
      mix_word(pending_);
      pending_ = 0;
      pending_bytes_ = 0;
    }
  }
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // little-endian hosts only (x86-64, aarch64)
    mix_word(word);
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    pending_ |= static_cast<uint64_t>(*p++) << (8 * pending_bytes_++);
    --size;
  }
  return *this;
}

Hasher& Hasher::update(std::string_view text) { return update(text.data(), text.size()); }

Hasher& Hasher::update_u64(uint64_t value) { return update(&value, sizeof value); }

Hasher& Hasher::field(std::string_view text) {
  update_u64(text.size());
  return update(text);
}

uint64_t Hasher::digest() const {
  uint64_t s = state_;
  if (pending_bytes_) s ^= rotl(pending_ * kMul2, 31) * kMul1;
  return mix64(s ^ length_);
}

uint64_t hash_bytes(std::string_view bytes, uint64_t seed) { return Hasher(seed).update(bytes).digest(); }

uint64_t hash_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path.string(), "'");
  Hasher hasher;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hasher.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) fail("error reading '", path.string(), "'");
  return hasher.digest();
}

std::string hex64(uint64_t value) {
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[static_cast<size_t>(i)] = digits[value & 15];
  return out;
}

}  // namespace moeforge::data
