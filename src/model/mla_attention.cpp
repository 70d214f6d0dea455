#include "model/mla_attention.h"

#include <torch/torch.h>

#include "model/linear.h"
#include "model/rope.h"

namespace moeforge::model {

namespace {

// transformers builds q_a_layernorm / kv_a_layernorm with DeepseekV3RMSNorm's default eps, not
// the config's rms_norm_eps.
constexpr double kLatentNormEps = 1e-6;

torch::Tensor latent_rms_norm(const torch::Tensor& x, const torch::Tensor& weight) {
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + kLatentNormEps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w) { return model::linear(x, w, torch::Tensor()); }

// transformers' apply_rotary_pos_emb_interleave: pairs (x0, x1), (x2, x3), ... each rotated by one
// frequency; the output is laid out [rotated evens | rotated odds] (the same for q and k, so q.k is
// that of the interleaved rotation). cos/sin [T, d] = cat(freqs, freqs): the first half per pair.
torch::Tensor apply_rope_interleaved(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = cos.size(-1) / 2;
  auto c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
  auto even = x.slice(-1, 0, x.size(-1), 2), odd = x.slice(-1, 1, x.size(-1), 2);
  return torch::cat({even * c - odd * s, odd * c + even * s}, -1);
}

}  // namespace

HeadProjections mla_project(const ModelSpec& spec, const LayerWeights& L, const torch::Tensor& x_BTH,
                            const torch::Tensor& positions_T) {
  const MlaSpec& mla = spec.mla;
  const int64_t B = x_BTH.size(0), T = x_BTH.size(1), heads = spec.num_heads;
  const int64_t nope = mla.qk_nope_head_dim, rope = mla.qk_rope_head_dim, dv = mla.v_head_dim;
  const int64_t rank = mla.kv_lora_rank;
  // Queries: q_b(norm(q_a x)) or q_proj x -> [B, nh, T, nope + rope].
  auto q = L.q_a.defined() ? project(latent_rms_norm(project(x_BTH, L.q_a), L.q_a_norm), L.q_b) : project(x_BTH, L.q);
  q = q.view({B, T, heads, nope + rope}).transpose(1, 2);
  auto q_nope = q.narrow(-1, 0, nope), q_rot = q.narrow(-1, nope, rope);
  // Keys/values: kv_a x = [latent (rank) | shared rope key (rope)]; kv_b(norm(latent)) per head
  // [k_nope | v].
  auto compressed = project(x_BTH, L.kv_a);                                            // [B, T, rank + rope]
  auto latent = latent_rms_norm(compressed.narrow(-1, 0, rank), L.kv_a_norm);          // [B, T, rank]
  auto k_rot = compressed.narrow(-1, rank, rope).reshape({B, 1, T, rope});             // one head for all
  auto kv = project(latent, L.kv_b).view({B, T, heads, nope + dv}).transpose(1, 2);   // [B, nh, T, nope + dv]
  auto k_nope = kv.narrow(-1, 0, nope);
  auto v = kv.narrow(-1, nope, dv);
  auto [cos, sin] = rope_cos_sin(spec, positions_T, q.scalar_type());  // [T, rope]
  if (mla.rope_interleave) {
    q_rot = apply_rope_interleaved(q_rot, cos, sin);
    k_rot = apply_rope_interleaved(k_rot, cos, sin);
  } else {
    q_rot = apply_rope(q_rot, cos, sin);
    k_rot = apply_rope(k_rot, cos, sin);
  }
  HeadProjections out;
  out.q = torch::cat({q_nope, q_rot}, -1);
  out.k = torch::cat({k_nope, k_rot.expand({B, heads, T, rope})}, -1);
  out.v = v.contiguous();
  return out;
}

}  // namespace moeforge::model
