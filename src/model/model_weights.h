// The runtime's weights: every tensor of a model as torch tensors in canonical layouts (experts
// stacked [E, R, H] / [E, H, F] with gate rows before up rows), loaded from any family's store.
// for_each_parameter() names them all once, for training selectors, optimiser state and saving.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "model/moe_experts.h"

namespace moeforge {
class CheckpointStore;
}

namespace moeforge::model {

// A dense or shared MLP: in = [gate; up] rows (gated) or c_fc rows (GPT-Neo), out = down.
struct MlpWeights {
  torch::Tensor w_in;   // [R, H]
  torch::Tensor b_in;   // [R] or undefined
  torch::Tensor w_out;  // [H, F]
  torch::Tensor b_out;  // [H] or undefined
  bool defined() const { return w_in.defined(); }
};

struct LayerWeights {
  torch::Tensor attn_norm, attn_norm_bias, ffn_norm, ffn_norm_bias;  // [H]
  torch::Tensor q, q_bias, k, k_bias, v, v_bias, o, o_bias;          // projections [out, in]
  torch::Tensor q_norm, k_norm;                                      // [hd] or whole-projection
  torch::Tensor sinks;                                               // [nh]
  torch::Tensor q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b;           // latent attention (DeepSeek-V3)
  MlpWeights mlp;                                                    // dense layers
  torch::Tensor router, router_bias, score_correction_bias;          // [E, H], [E], [E]
  StackedExperts experts;                                            // routed experts, stacked
  MlpWeights shared;                                                 // shared expert (optional)
  torch::Tensor shared_gate;                                         // [1, H] sigmoid gate
  torch::Tensor shared_scale;                                        // [1] learned scale
};

struct ModelWeights {
  torch::Tensor embed;          // [V, H]
  torch::Tensor position_embed;  // [P, H] (learned positions)
  torch::Tensor final_norm, final_norm_bias;
  torch::Tensor lm_head;        // [V, H]; the embedding when tied
  std::vector<LayerWeights> layers;
};

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  bool check_finite = true;  // reject NaN/inf weights, naming the tensor (read in place)
  // Tensors stored in the run dtype, loaded on CPU, become read-only zero-copy views of the mapped
  // file (tensor/torch_bridge.h is_mapped_view). Off: every tensor is a private copy (for tests).
  bool map_frozen = true;
  // MXFP4 experts stay packed (StackedExperts::packed: 4.25 bits per weight, zero-copy on CPU) and
  // are decoded one expert at a time; no weight gradient can be formed for them. Off: decoded into
  // dense stacks at load (--dequantize; what training the experts needs).
  bool pack_mxfp4 = false;
  // Transformer::load refuses, before reading weights, a model whose predicted host peak
  // (model/memory_plan.h) exceeds this: -1 = MemAvailable, 0 = no limit.
  int64_t max_memory_bytes = -1;
  // Processes of one run on this machine (torchrun's LOCAL_WORLD_SIZE): they share its memory, so
  // each is held to its share of the budget (model/memory_plan.h rank_budget).
  int local_ranks = 1;
  bool verbose = false;  // print the memory plan to stderr
  // What the command adds to the weights on the host (train: state and activations), counted in the
  // budget check; `work_what` describes it in the plan's messages.
  uint64_t work_bytes = 0;
  std::string work_what;
  // Forward-only commands that run each batch through the layers in order (stats, eval,
  // teacher-cache): a model over the budget whose layers fit one at a time is streamed instead of
  // refused (Transformer::streaming()).
  bool allow_streaming = false;
  // ZeRO-3 (train/sharded_frozen.h): called with the weights after each tensor or block is loaded, so
  // a tensor it replaces by this rank's shard is never whole beside the rest of the model; `is_split`
  // names those (the table's shape check skips them).
  std::function<void(ModelWeights&)> after_each_load;
  int split_ranks = 1;  // the ranks it splits over: the memory plan counts a shard of what it splits
  bool split_packed = false;  // packed MXFP4 experts are split too
  std::function<bool(const std::string& name)> is_split;
};

// Loads and validates (shapes via validate_store) every tensor of the model. Some tensors may be
// views of the mapped file that must never be written: call make_writable() before writing one.
ModelWeights load_model_weights(const ModelSpec& spec, const CheckpointStore& store, const LoadOptions& options);

// Replaces `tensor` by a private copy when it is a view of a mapped file (no-op otherwise), so it
// can be written. Returns whether a copy was made.
bool make_writable(torch::Tensor& tensor);
// The same for a tensor of `weights` (a reference into it), keeping a tied LM head tied.
bool make_writable(ModelWeights& weights, torch::Tensor& tensor);

// Visits every defined tensor with a stable canonical name: "embed", "layers.3.q", "layers.3.experts.w_in", ...
void for_each_parameter(ModelWeights& weights, const std::function<void(const std::string& name, torch::Tensor& tensor)>& visit);

}  // namespace moeforge::model
