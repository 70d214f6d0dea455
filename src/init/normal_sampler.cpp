// Box-Muller normal sampling on mt19937_64 (two samples per pair of uniforms).
#include "init/normal_sampler.h"

#include <cmath>

namespace moeforge::init {

double NormalSampler::uniform_open() {
  return (static_cast<double>(engine_() >> 11) + 1.0) * 0x1.0p-53;  // never 0, so log() is finite
}

double NormalSampler::next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform_open(), u2 = uniform_open();
  double radius = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * 3.14159265358979323846 * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

}  // namespace moeforge::init
