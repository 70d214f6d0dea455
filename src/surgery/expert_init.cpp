// Expert initialisation methods for upcycling (see expert_init.h).
#include "surgery/expert_init.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "surgery/surgery_util.h"

namespace moeforge::surgery {
namespace {

double rms(const std::vector<float>& v) {
  double sq = 0;
  for (float x : v) sq += static_cast<double>(x) * x;
  return v.empty() ? 0.0 : std::sqrt(sq / static_cast<double>(v.size()));
}

void add_noise(std::vector<float>& v, double rel_std, uint64_t seed) {
  if (v.empty()) return;
  std::vector<float> noise = normal_floats(v.size(), 0.0, rel_std * rms(v), seed);
  for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
}

}  // namespace

void add_relative_noise(ExpertWeights& w, double rel_std, uint64_t seed) {
  add_noise(w.gate, rel_std, mix_seed(seed, 1));
  add_noise(w.up, rel_std, mix_seed(seed, 2));
  add_noise(w.down, rel_std, mix_seed(seed, 3));
}

MatrixStats matrix_stats(const ExpertWeights& dense) {
  MatrixStats s;
  mean_std(dense.gate, s.gate_mean, s.gate_std);
  mean_std(dense.up, s.up_mean, s.up_std);
  mean_std(dense.down, s.down_mean, s.down_std);
  return s;
}

void drop_upcycle(ExpertWeights& w, double ratio, const MatrixStats& stats, uint64_t seed) {
  const int64_t F = w.intermediate_size, H = w.hidden_size;
  const int64_t count = static_cast<int64_t>(std::llround(ratio * static_cast<double>(F)));
  std::vector<int64_t> units(F);
  std::iota(units.begin(), units.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(units.begin(), units.end(), rng);
  units.resize(count);
  std::normal_distribution<double> dist(0.0, 1.0);
  for (int64_t f : units) {
    for (int64_t h = 0; h < H; ++h) {
      if (!w.gate.empty()) w.gate[f * H + h] = static_cast<float>(stats.gate_mean + stats.gate_std * dist(rng));
      w.up[f * H + h] = static_cast<float>(stats.up_mean + stats.up_std * dist(rng));
      w.down[h * F + f] = static_cast<float>(stats.down_mean + stats.down_std * dist(rng));
    }
  }
}

ExpertWeights granular_slice(const ExpertWeights& dense, int64_t g, int64_t G) {
  const int64_t F = dense.intermediate_size, H = dense.hidden_size;
  if (G < 1 || F % G != 0) fail("--granularity ", G, " does not divide the FFN width ", F);
  const int64_t Fs = F / G, begin = g * Fs;
  ExpertWeights w;
  w.hidden_size = H;
  w.intermediate_size = Fs;
  auto rows = [&](const std::vector<float>& m) {
    return m.empty() ? m : std::vector<float>(m.begin() + begin * H, m.begin() + (begin + Fs) * H);
  };
  w.gate = rows(dense.gate);
  w.up = rows(dense.up);
  w.down.resize(H * Fs);
  for (int64_t h = 0; h < H; ++h)
    std::copy(dense.down.begin() + h * F + begin, dense.down.begin() + h * F + begin + Fs, w.down.begin() + h * Fs);
  auto bias = [&](const std::vector<float>& b) {
    return b.empty() ? b : std::vector<float>(b.begin() + begin, b.begin() + begin + Fs);
  };
  w.gate_bias = bias(dense.gate_bias);
  w.up_bias = bias(dense.up_bias);
  if (!dense.down_bias.empty()) {
    w.down_bias = dense.down_bias;
    for (float& b : w.down_bias) b /= static_cast<float>(G);
  }
  return w;
}

void scale_output(ExpertWeights& w, double factor) {
  if (factor == 1.0) return;
  for (float& v : w.down) v = static_cast<float>(v * factor);
  for (float& v : w.down_bias) v = static_cast<float>(v * factor);
}

}  // namespace moeforge::surgery
