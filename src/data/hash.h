// Stable 64-bit content hashes for cache keys and seeded choices (not cryptographic): the same
// bytes give the same hash on every machine and run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace moeforge::data {

// Streaming hasher: update() any number of times, then digest(). Byte order independent of
// how the input is split into updates.
class Hasher {
 public:
  explicit Hasher(uint64_t seed = 0);
  Hasher& update(const void* bytes, size_t size);
  Hasher& update(std::string_view text);
  Hasher& update_u64(uint64_t value);
  // Length-prefixed, so ("ab","c") and ("a","bc") differ.
  Hasher& field(std::string_view text);
  uint64_t digest() const;

 private:
  void mix_word(uint64_t word);
  uint64_t state_;
  uint64_t length_ = 0;
  uint64_t pending_ = 0;  // up to 7 bytes not yet mixed
  unsigned pending_bytes_ = 0;
};

uint64_t hash_bytes(std::string_view bytes, uint64_t seed = 0);
// Hash of a file's bytes, read in chunks. Throws naming the file when it cannot be read.
uint64_t hash_file(const std::filesystem::path& path);
// splitmix64 finaliser: a well-mixed 64-bit value from any 64-bit value (seeded choices).
uint64_t mix64(uint64_t value);
// 16 lowercase hex digits.
std::string hex64(uint64_t value);

}  // namespace moeforge::data
