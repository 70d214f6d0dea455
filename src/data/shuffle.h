// Seeded, platform-independent shuffling (std::shuffle's output differs between standard
// libraries, so datasets use this instead): the same seed gives the same order everywhere.
#pragma once

#include <cstdint>
#include <vector>

namespace moeforge::data {

// splitmix64 stream: next() returns well-mixed 64-bit values; below(n) is uniform in [0, n).
class SeededRng {
 public:
  explicit SeededRng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // n > 0; rejection sampling, no modulo bias
 private:
  uint64_t state_;
};

// Fisher-Yates with SeededRng.
template <typename T>
void seeded_shuffle(std::vector<T>& items, uint64_t seed) {
  SeededRng rng(seed);
  for (size_t i = items.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

// [0, n) in seeded random order.
std::vector<uint32_t> seeded_permutation(uint32_t n, uint64_t seed);

}  // namespace moeforge::data
