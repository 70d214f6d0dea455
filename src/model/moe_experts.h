// The MoE expert computation: sort token->expert assignments by expert, run one GEMM pair per
// expert on its tokens only, scale by the combine weights and scatter-add back. Forward and
// backward are one autograd function (gather, per-expert GEMMs, scatter), so the backward costs
// about twice the forward instead of what autograd would trace through index ops.
#pragma once

#include <torch/types.h>

#include <vector>

#include "arch/model_spec.h"  // Activation: the one activation vocabulary

namespace moeforge::model {

struct ActivationOptions {
  Activation kind = Activation::SiluGlu;
  double limit = 7.0;   // GPT-OSS swiglu_limit
  double alpha = 1.702;  // GPT-OSS sigmoid scale
  bool gated() const { return kind != Activation::GeluNew; }
};

// MXFP4 experts kept packed (4.25 bits per weight; on CPU zero-copy views of the mapped file),
// decoded one expert at a time in forward and backward (model/mxfp4_experts.h). The layout is
// GPT-OSS's: in_blocks [E, 2F, H/32, 16] with gate and up rows interleaved (decoding puts the gate
// rows first, as w_in), in_scales [E, 2F, H/32]; out_blocks [E, H, F/32, 16], out_scales [E, H, F/32].
// Frozen: no weight gradient is formed, the input gradient flows through the decoded experts.
struct PackedExperts {
  torch::Tensor in_blocks, in_scales, out_blocks, out_scales;
  bool defined() const { return in_blocks.defined(); }
  int64_t num_experts() const { return in_blocks.size(0); }
  int64_t rows() const { return in_blocks.size(1); }           // R = 2F
  int64_t hidden() const { return out_blocks.size(1); }        // H
  int64_t width() const { return out_blocks.size(2) * 32; }    // F
};

// Experts stacked along dim 0 (torchtitan layout). For gated activations the input projection
// holds gate rows [0, F) then up rows [F, 2F). Either w_in/w_out hold every expert, or `packed`
// does; a packed stack whose experts are trained holds those few dense (`unpacked`, the rows of
// w_in/w_out in that order) and runs the rest from their blocks (model/mxfp4_experts.h).
struct StackedExperts {
  torch::Tensor w_in;   // [E, R, H], R = 2F (gated) or F; packed: [n, R, H] of `unpacked`, or undefined
  torch::Tensor b_in;   // [E, R] or undefined
  torch::Tensor w_out;  // [E, H, F]; packed: [n, H, F] of `unpacked`, or undefined
  torch::Tensor b_out;  // [E, H] or undefined
  PackedExperts packed;
  std::vector<int64_t> unpacked;  // packed stacks: ascending ids of the experts w_in/w_out hold
  int64_t num_experts() const { return packed.defined() ? packed.num_experts() : w_in.size(0); }
  // The row of w_in/w_out holding expert e: e itself for dense stacks, -1 for one still packed.
  int64_t row_of(int64_t expert) const;
};

// out[t] = sum_k weights[t, k] * expert_{ids[t, k]}(x[t]).
// x_TH [T, H]; expert_ids_TK [T, K] int64; weights_TK [T, K] (float32, differentiable).
// Differentiable w.r.t. x, weights and every expert tensor.
torch::Tensor run_experts(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                          const torch::Tensor& weights_TK, const StackedExperts& experts,
                          const ActivationOptions& activation);

// How the per-expert GEMMs run. Loop: one mm per expert with tokens (row counts copied to the
// host). Grouped: torch's grouped GEMM (at::_grouped_mm, libtorch >= 2.8) over all experts at
// once, with no host sync; needs fp32/bf16/fp16 and H, R, F rows aligned to 16 bytes, else the
// loop runs. Auto (default): grouped on CUDA, the loop on CPU (equally fast there); if the
// grouped GEMM throws on this device (old GPU, unsupported dtype), a note is printed once and
// the loop is used from then on. Process-wide; benchmarks and tests switch it.
enum class ExpertGemm { Auto, Loop, Grouped };
void set_expert_gemm(ExpertGemm gemm);
ExpertGemm expert_gemm();
bool grouped_gemm_available();  // this libtorch has at::_grouped_mm

// How many experts of this size (R*H + H*F values) run at once on CPU, each GEMM on one thread:
// the intra-op thread count for experts up to 8M values, else 1 (each GEMM split over the threads).
// A packed stack then holds that many decoded experts at once (model/memory_plan.h counts them).
int64_t concurrent_expert_workers(int64_t values_per_expert);

// Reference implementation for tests: every expert on every token, masked (slow, autograd-traced).
torch::Tensor run_experts_dense_reference(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                          const torch::Tensor& weights_TK, const StackedExperts& experts,
                                          const ActivationOptions& activation);

// Elementwise activation on pre-activations [N, R] -> [N, F], and its backward.
torch::Tensor activation_forward(const torch::Tensor& pre_NR, const ActivationOptions& activation);
torch::Tensor activation_backward(const torch::Tensor& pre_NR, const torch::Tensor& grad_NF,
                                  const ActivationOptions& activation);

}  // namespace moeforge::model
