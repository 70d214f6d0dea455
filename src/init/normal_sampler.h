// Seeded N(mean, std) samples from std::mt19937_64 with our own Box-Muller transform, so the
// values are identical across standard libraries (std::normal_distribution's are not).
#pragma once

#include <cstdint>
#include <random>

namespace moeforge::init {

class NormalSampler {
 public:
  explicit NormalSampler(uint64_t seed) : engine_(seed) {}
  double next();  // N(0, 1)

 private:
  double uniform_open();  // (0, 1], 53 random bits
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace moeforge::init
