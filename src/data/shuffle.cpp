// Seeded shuffling primitives (splitmix64 + Fisher-Yates).
#include "data/shuffle.h"

#include <numeric>

namespace moeforge::data {

uint64_t SeededRng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t SeededRng::below(uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // values >= limit would bias toward small results
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % n;
}

std::vector<uint32_t> seeded_permutation(uint32_t n, uint64_t seed) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  seeded_shuffle(order, seed);
  return order;
}

}  // namespace moeforge::data
