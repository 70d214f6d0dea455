// The decoder-only transformer for every supported family, built from a ModelSpec and
// ModelWeights: embeddings, attention (RoPE/YaRN, GQA, q/k norm, sliding window, sinks), dense MLP
// or MoE (router -> sorted dispatch -> experts -> combine, shared expert), LM head, KV cache.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "arch/model_spec.h"
#include "model/model_weights.h"
#include "model/router.h"

namespace moeforge::model {

// Keys and values per layer, [B, kv_heads, S, head_dim] (latent attention: per-head k/v after
// kv_b_proj, v of v_head_dim), grown by each forward call.
struct KvCache {
  std::vector<torch::Tensor> keys, values;
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
};

struct ExpertParallel;     // model/expert_parallel.h
class LayerWeightSource;   // model/layer_recompute.h

struct ForwardOptions {
  torch::Tensor attention_mask;  // [B, S_total] 1 = real token, 0 = padding (optional)
  KvCache* cache = nullptr;      // when set, keys/values are appended and reused
  std::map<int64_t, int64_t> force_expert;             // layer -> expert: every token goes there
  std::map<int64_t, torch::Tensor> selection_bias;     // layer -> [E] added for selection only
  double router_noise_std = 0.0;                       // training: N(0, std) added to router logits
  // Where that noise is drawn: a CPU generator, in fp32 (the trainer seeds one per micro-batch, so a
  // micro-batch draws the same noise on any rank, world size or device). Required with noise.
  std::optional<at::Generator> router_noise_generator;
  bool last_token_logits_only = false;                 // generation: skip the other positions
  bool hidden_only = false;  // training losses: return the final-normed hidden states; the caller applies lm_head in chunks
  bool record_layer_inputs = false;  // fill ForwardOutput::layer_inputs (router init from prompts)
  const ExpertParallel* expert_parallel = nullptr;  // training over ranks: each computes its block of the experts
  // ZeRO-3: each layer's weights gathered from here just before it runs; with autograd the layer is
  // recomputed in the backward (model/layer_recompute.h). Must outlive the backward.
  const LayerWeightSource* layer_source = nullptr;
};

struct LayerRouting {
  int64_t layer = -1;
  torch::Tensor logits;  // [B*T, E] raw router logits (incl. router bias)
  Routing routing;       // ids/weights [B*T, K], probs [B*T, E]
};

struct ForwardOutput {
  torch::Tensor logits;               // [B, T, V] float32 (T = 1 with last_token_logits_only); undefined with hidden_only
  torch::Tensor hidden;               // [B, T, H] after the final norm, model dtype; only with hidden_only
  std::vector<LayerRouting> routing;  // one entry per MoE layer, in layer order
  // With record_layer_inputs: the residual stream entering each layer, before its norm ([B, T, H];
  // the embeddings for layer 0), what transformers returns as hidden_states[l].
  std::vector<torch::Tensor> layer_inputs;
};

class Transformer {
 public:
  Transformer(ModelSpec spec, ModelWeights weights);
  // Opens a model directory: spec from config.json, weights validated and loaded.
  static std::unique_ptr<Transformer> load(const std::filesystem::path& model_dir, const LoadOptions& options = {});

  // ids [B, T] int64.
  ForwardOutput forward(const torch::Tensor& ids, const ForwardOptions& options = {}) const;
  // The same with other weights of the same shapes (training: LoRA-merged or noised weights).
  ForwardOutput forward_with(const ModelWeights& weights, const torch::Tensor& ids, const ForwardOptions& options) const;

  // forward() of each batch (all of one length), run as one: every layer once over all their rows
  // (no KV cache), so with streaming each layer's weights are read, and packed experts decoded, once
  // for the group instead of once per batch. The outputs are split back per batch: forward()'s up
  // to the rounding of larger GEMMs.
  std::vector<ForwardOutput> forward_layer_major(const std::vector<torch::Tensor>& ids, const ForwardOptions& options = {}) const;

  // Layer streaming: mapped weights (model/memory_plan.h) are released after each use in forward,
  // so about one layer is resident; every pass reads them again from the page cache or the file.
  bool streaming() const { return streaming_; }
  // A streamed load: what the budget leaves beside the streamed peak (for a layer-major pass's
  // hidden states); 0 otherwise.
  uint64_t streaming_spare_bytes() const { return streaming_spare_bytes_; }
  void set_streaming(bool on) { streaming_ = on; }
  // Tokens per layer-major group for a streamed model: half of streaming_spare_bytes(), at most
  // cap_bytes, over what a token holds during the pass (hidden states, one MoE layer's dispatched rows,
  // every layer's routing); 0 when not streaming or cap_bytes is 0 (batch by batch).
  int64_t layer_major_group_tokens(int64_t cap_bytes) const;
  // The LM head over final-normed hidden states (forward's hidden_only output): [B, T, V] float32.
  torch::Tensor head_logits(const torch::Tensor& hidden) const;
  // A streamed pass that stopped at hidden states and applied head_logits itself is over: the
  // model-level tensors' pages leave this process (nothing when not streaming).
  void end_streamed_pass() const;

  const ModelSpec& spec() const { return spec_; }
  ModelWeights& weights() { return weights_; }
  const ModelWeights& weights() const { return weights_; }
  torch::Device device() const { return weights_.embed.device(); }
  torch::Dtype dtype() const { return weights_.embed.scalar_type(); }

 private:
  // forward_with's three parts: embeddings (and positions), one decoder layer, final norm + head.
  torch::Tensor embed_input(const ModelWeights& weights, const torch::Tensor& ids, const ForwardOptions& options,
                            torch::Tensor& positions_T) const;
  torch::Tensor run_layer(const ModelWeights& weights, int64_t layer, const torch::Tensor& h, const torch::Tensor& positions_T,
                          const ForwardOptions& options, ForwardOutput& output) const;
  // run_layer with layer l's weights gathered from options.layer_source (recomputed under autograd).
  torch::Tensor run_gathered_layer(const ModelWeights& weights, int64_t layer, const torch::Tensor& h, const torch::Tensor& positions_T,
                                   const ForwardOptions& options, ForwardOutput& output) const;
  void finish_output(const ModelWeights& weights, torch::Tensor h, const ForwardOptions& options, ForwardOutput& output) const;
  torch::Tensor attention(const ModelWeights& weights, int64_t layer, const torch::Tensor& x_BTH, const torch::Tensor& positions_T,
                          const ForwardOptions& options) const;
  torch::Tensor attend(const LayerWeights& layer, int64_t l, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                       const torch::Tensor& positions_T, const ForwardOptions& options) const;
  torch::Tensor moe(const ModelWeights& weights, int64_t layer, const torch::Tensor& x_BTH, const ForwardOptions& options,
                    ForwardOutput& output) const;
  torch::Tensor norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) const;

  ModelSpec spec_;
  ModelWeights weights_;
  RouterOptions router_options_;
  ActivationOptions activation_;
  bool streaming_ = false;
  uint64_t streaming_spare_bytes_ = 0;
};

// The router options a spec implies (kind, top-k, renormalisation, scaling, groups).
RouterOptions router_options_for(const ModelSpec& spec);
ActivationOptions activation_for(const ModelSpec& spec);

}  // namespace moeforge::model
