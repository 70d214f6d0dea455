// One seed per purpose from a user's seed (splitmix64 mixing): surgery's per-(layer, expert) draws,
// training's per-micro-batch router noise.
#pragma once

#include <cstdint>

namespace moeforge {

inline uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return mix(mix(mix(mix(seed) ^ a) ^ b) ^ c);
}

}  // namespace moeforge
