#include "model/rope.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"

namespace moeforge::model {

namespace {

torch::Tensor default_inverse_frequencies(double base, int64_t dim) {
  return 1.0 / torch::pow(base, torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim));
}

torch::Tensor yarn_inverse_frequencies(const RopeSpec& rope, int64_t dim) {
  const double base = rope.theta, factor = rope.factor;
  const double original = static_cast<double>(rope.original_max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(original / (rotations * 2 * M_PI))) / (2 * std::log(base));
  };
  double low = correction_dim(rope.beta_fast), high = correction_dim(rope.beta_slow);
  if (rope.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a division by zero, as transformers does
  auto pos_freqs = torch::pow(base, torch::arange(0, dim, 2, torch::kFloat32) / static_cast<double>(dim));
  auto extrapolation = 1.0 / pos_freqs;
  auto interpolation = 1.0 / (factor * pos_freqs);
  auto ramp = ((torch::arange(dim / 2, torch::kFloat32) - low) / (high - low)).clamp(0, 1);
  auto extrapolation_weight = 1 - ramp;
  return interpolation * (1 - extrapolation_weight) + extrapolation * extrapolation_weight;
}

torch::Tensor llama3_inverse_frequencies(const RopeSpec& rope, int64_t dim) {
  auto inv = default_inverse_frequencies(rope.theta, dim);
  const double old_context = static_cast<double>(rope.original_max_position_embeddings);
  const double low_wavelen = old_context / rope.low_freq_factor;
  const double high_wavelen = old_context / rope.high_freq_factor;
  auto wavelen = 2 * M_PI / inv;
  auto scaled = torch::where(wavelen > low_wavelen, inv / rope.factor, inv);
  auto smooth = (old_context / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

}  // namespace

std::pair<torch::Tensor, double> rope_inverse_frequencies(const ModelSpec& spec, int64_t sequence_length) {
  const RopeSpec& rope = spec.rope;
  const int64_t dim = spec.rotary_dim();
  switch (rope.scaling) {
    case RopeScaling::None: return {default_inverse_frequencies(rope.theta, dim), 1.0};
    case RopeScaling::Linear: return {default_inverse_frequencies(rope.theta, dim) / rope.factor, 1.0};
    case RopeScaling::Dynamic: {
      const double max_positions = static_cast<double>(spec.max_position_embeddings);
      const double length = std::max<double>(static_cast<double>(sequence_length), max_positions);
      const double base = rope.theta * std::pow((rope.factor * length / max_positions) - (rope.factor - 1),
                                                static_cast<double>(dim) / (dim - 2));
      return {default_inverse_frequencies(base, dim), 1.0};
    }
    case RopeScaling::Llama3: return {llama3_inverse_frequencies(rope, dim), 1.0};
    case RopeScaling::Yarn: return {yarn_inverse_frequencies(rope, dim), rope.attention_factor};
  }
  fail("unsupported RoPE scaling in ", spec.source);
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const ModelSpec& spec, const torch::Tensor& positions,
                                                     torch::Dtype dtype) {
  const int64_t length = positions.numel() ? positions.max().item<int64_t>() + 1 : 0;
  auto [inverse, scale] = rope_inverse_frequencies(spec, length);
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inverse.to(positions.device()).unsqueeze(0);  // [T, d/2]
  auto angles = torch::cat({freqs, freqs}, -1);                                                               // [T, d]
  return {(angles.cos() * scale).to(dtype), (angles.sin() * scale).to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t rotary = cos.size(-1), head_dim = x.size(-1);
  auto rotated_part = rotary == head_dim ? x : x.narrow(-1, 0, rotary);
  auto halves = rotated_part.chunk(2, -1);
  auto rotate_half = torch::cat({-halves[1], halves[0]}, -1);
  auto out = rotated_part * cos + rotate_half * sin;  // cos/sin [T, d] broadcast over [B, h, T, d]
  if (rotary == head_dim) return out;
  return torch::cat({out, x.narrow(-1, rotary, head_dim - rotary)}, -1);
}

}  // namespace moeforge::model
