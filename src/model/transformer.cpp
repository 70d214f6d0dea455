#include "model/transformer.h"

#include <torch/torch.h>

#include "arch/family_adapter.h"
#include "common/cpu_features.h"
#include "common/error.h"
#include "common/strings.h"
#include "common/system_memory.h"
#include "io/checkpoint_store.h"
#include "model/expert_parallel.h"
#include "model/layer_recompute.h"
#include "model/linear.h"
#include "model/memory_plan.h"
#include "model/mla_attention.h"
#include "model/moe_experts.h"
#include "model/mxfp4_experts.h"
#include "model/rope.h"
#include "model/tensor_table.h"
#include "tensor/torch_bridge.h"

#include <cstdio>

namespace moeforge::model {

namespace {

// Layer streaming: what a layer (or the model-level tensors) holds mapped leaves this process's
// resident memory once used; the next pass faults it back in (tensor/torch_bridge.h).
void release_tensors(const ModelWeights& weights, int64_t layer, TensorScope scope) {
  auto& w = const_cast<ModelWeights&>(weights);  // the accessors are non-const; nothing is written
  for (const RuntimeTensor& entry : runtime_tensors())
    if (entry.scope == scope) release_mapped_pages(entry.get(w, layer));
}

void release_layer(const ModelWeights& weights, int64_t layer) {
  release_tensors(weights, layer, TensorScope::Layer);
  release_packed_pages(weights.layers[layer].experts.packed);
}

void release_model_level(const ModelWeights& weights) { release_tensors(weights, -1, TensorScope::Model); }

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor run_mlp(const torch::Tensor& x, const MlpWeights& mlp, const ActivationOptions& activation) {
  auto pre = linear(x, mlp.w_in, mlp.b_in);
  return linear(activation_forward(pre, activation), mlp.w_out, mlp.b_out);
}

}  // namespace

RouterOptions router_options_for(const ModelSpec& spec) {
  RouterOptions options;
  options.top_k = spec.moe.top_k;
  options.renormalize = spec.moe.norm_topk_prob;
  options.routed_scaling_factor = spec.moe.routed_scaling_factor;
  options.num_groups = spec.moe.n_group;
  options.top_groups = spec.moe.topk_group;
  options.kind = spec.moe.router;
  return options;
}

ActivationOptions activation_for(const ModelSpec& spec) {
  ActivationOptions options;
  options.kind = spec.activation;
  options.limit = spec.swiglu_limit;
  options.alpha = spec.swiglu_alpha;
  return options;
}

Transformer::Transformer(ModelSpec spec, ModelWeights weights)
    : spec_(std::move(spec)), weights_(std::move(weights)) {
  router_options_ = router_options_for(spec_);
  activation_ = activation_for(spec_);
}

std::unique_ptr<Transformer> Transformer::load(const std::filesystem::path& model_dir, const LoadOptions& options) {
  auto store = CheckpointStore::open(model_dir);
  ModelSpec spec = load_model_spec(*store);
  MemoryPlan plan = plan_model_memory(spec, *store, from_scalar_type(options.dtype), options.device.is_cpu(),
                                      options.map_frozen, options.pack_mxfp4, options.split_ranks, options.split_packed);
  plan.work = options.work_bytes;
  plan.work_what = options.work_what;
  if (options.verbose) std::fprintf(stderr, "%s\n", describe(plan, model_dir.string()).c_str());
  const uint64_t machine_budget = options.max_memory_bytes < 0 ? available_memory_bytes() : static_cast<uint64_t>(options.max_memory_bytes);
  // Local ranks share the machine: each maps the same file pages (all of them, or one layer's when streamed).
  const uint64_t budget = rank_budget(machine_budget, options.local_ranks, plan.device ? 0 : plan.mapped);
  const uint64_t streamed_budget = rank_budget(machine_budget, options.local_ranks,
                                               plan.device ? 0 : std::max(plan.largest_layer_mapped, plan.model_level_mapped));
  const bool stream = options.allow_streaming && budget && plan.host_peak() > budget && plan.streamed_peak() <= streamed_budget;
  if (stream)
    std::fprintf(stderr, "moeforge: note: %s needs about %s but the memory budget is %s: streaming its weights one layer at a time "
                 "(about %s resident; each pass over the layers reads them again from the page cache or the disk)\n", model_dir.string().c_str(),
                 format_gb(plan.host_peak()).c_str(), format_gb(budget).c_str(), format_gb(plan.streamed_peak()).c_str());
  else
    check_memory_budget(plan, budget, model_dir.string(), options.allow_streaming, options.local_ranks, machine_budget);
  if (options.device.is_cpu() && options.dtype == torch::kBFloat16) note_bf16_without_hardware();
  ModelWeights weights = load_model_weights(spec, *store, options);
  auto model = std::make_unique<Transformer>(std::move(spec), std::move(weights));
  model->set_streaming(stream);
  if (stream) model->streaming_spare_bytes_ = streamed_budget - plan.streamed_peak();
  return model;
}

torch::Tensor Transformer::norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) const {
  if (spec_.norm == NormKind::LayerNorm)
    return torch::layer_norm(x, {x.size(-1)}, weight, bias, spec_.norm_eps);
  return rms_norm(x, weight, spec_.norm_eps);
}

torch::Tensor Transformer::attention(const ModelWeights& weights, int64_t l, const torch::Tensor& x_BTH,
                                     const torch::Tensor& positions_T, const ForwardOptions& options) const {
  const LayerWeights& L = weights.layers[l];
  if (spec_.mla.enabled()) {  // DeepSeek-V3 latent attention: its own projections, the common rest
    HeadProjections p = mla_project(spec_, L, x_BTH, positions_T);
    return attend(L, l, p.q, p.k, p.v, positions_T, options);
  }
  const int64_t B = x_BTH.size(0), T = x_BTH.size(1);
  const int64_t heads = spec_.num_heads, kv_heads = spec_.num_kv_heads, head_dim = spec_.head_dim;
  auto q = linear(x_BTH, L.q, L.q_bias);  // [B, T, nh*hd]
  auto k = linear(x_BTH, L.k, L.k_bias);  // [B, T, nkv*hd]
  auto v = linear(x_BTH, L.v, L.v_bias);
  if (spec_.qk_norm == QkNorm::WholeProjection) {
    q = rms_norm(q, L.q_norm, spec_.norm_eps);
    k = rms_norm(k, L.k_norm, spec_.norm_eps);
  }
  if (spec_.clip_qkv > 0) {
    q = q.clamp(-spec_.clip_qkv, spec_.clip_qkv);
    k = k.clamp(-spec_.clip_qkv, spec_.clip_qkv);
    v = v.clamp(-spec_.clip_qkv, spec_.clip_qkv);
  }
  q = q.view({B, T, heads, head_dim});
  k = k.view({B, T, kv_heads, head_dim});
  v = v.view({B, T, kv_heads, head_dim});
  if (spec_.qk_norm == QkNorm::PerHead) {
    q = rms_norm(q, L.q_norm, spec_.norm_eps);
    k = rms_norm(k, L.k_norm, spec_.norm_eps);
  }
  q = q.transpose(1, 2);  // [B, nh, T, hd]
  k = k.transpose(1, 2);  // [B, nkv, T, hd]
  v = v.transpose(1, 2);
  if (spec_.positions == PositionKind::Rope) {
    auto [cos, sin] = rope_cos_sin(spec_, positions_T, q.scalar_type());  // [T, rd]
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);
  }
  return attend(L, l, q, k, v, positions_T, options);
}

// q [B, nh, T, d], k [B, nkv, T, d], v [B, nkv, T, dv] -> o_proj(attention) [B, T, H]: KV cache,
// grouped-query heads, causal / sliding-window / padding masks, sinks.
torch::Tensor Transformer::attend(const LayerWeights& L, int64_t l, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                                  const torch::Tensor& positions_T, const ForwardOptions& options) const {
  const int64_t B = q.size(0), T = q.size(2);
  const int64_t heads = q.size(1), kv_heads = k.size(1), head_dim = q.size(-1);
  if (options.cache) {
    KvCache& cache = *options.cache;
    if (cache.keys[l].defined()) {
      k = torch::cat({cache.keys[l], k}, 2);
      v = torch::cat({cache.values[l], v}, 2);
    }
    cache.keys[l] = k;
    cache.values[l] = v;
  }
  const int64_t S = k.size(2);
  if (kv_heads != heads) {  // grouped-query attention: each kv head serves heads/kv_heads queries
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  // Scores in float32 (as GPT-Neo and the eager paths of transformers do for stability).
  const double scale = spec_.attention_scale > 0 ? spec_.attention_scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  const int64_t window = spec_.sliding_window.empty() ? 0 : spec_.sliding_window[l];
  // Causal (and sliding-window) visibility of key positions from query positions: [1, 1, T, S].
  auto causal_mask = [&] {
    auto key_pos = torch::arange(S, positions_T.options()).unsqueeze(0);  // [1, S]
    auto query_pos = positions_T.unsqueeze(1);                              // [T, 1]
    auto allowed = key_pos <= query_pos;                                    // [T, S]
    if (window > 0) allowed = allowed.logical_and(key_pos > query_pos - window);
    return allowed.unsqueeze(0).unsqueeze(0);
  };
  const auto dtype = v.scalar_type();
  const bool plain_causal = S == T && window == 0;  // no cache yet: positions 0..T-1
  if (!L.sinks.defined() && !options.attention_mask.defined()) {
    // Fused attention (same float32 math without materialising [T, S] scores for autograd): every
    // query sees at least itself here, so no row is fully masked. Plain causal needs no mask.
    std::optional<torch::Tensor> mask;
    if (!plain_causal) mask = causal_mask();
    auto out = at::scaled_dot_product_attention(q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32),
                                                mask, 0.0, plain_causal, scale);
    out = out.to(dtype).transpose(1, 2).reshape({B, T, heads * v.size(-1)});
    return linear(out, L.o, L.o_bias);
  }
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                           (L.sinks.defined() && L.sinks.requires_grad()));
  if (L.sinks.defined() && !options.attention_mask.defined() && q.is_cpu() && !needs_grad) {
    // GPT-OSS sinks on the fused kernel: a sink adds exp(sink) to each row's softmax denominator, so
    // the attention with sinks is the plain one times sigmoid(logsumexp - sink). The kernel's
    // logsumexp has no gradient, so this serves forward-only work (eval, stats, generate).
    std::optional<torch::Tensor> mask;
    if (!plain_causal)
      mask = torch::zeros({1, 1, T, S}, q.options().dtype(torch::kFloat32))
                 .masked_fill(causal_mask().logical_not(), -std::numeric_limits<float>::infinity());
    auto [out, logsumexp] = at::_scaled_dot_product_flash_attention_for_cpu(
        q.to(torch::kFloat32), k.to(torch::kFloat32), v.to(torch::kFloat32), 0.0, plain_causal, mask, scale);
    auto kept = torch::sigmoid(logsumexp - L.sinks.to(torch::kFloat32).view({1, heads, 1}));  // [B, nh, T]
    out = (out * kept.unsqueeze(-1)).to(dtype).transpose(1, 2).reshape({B, T, heads * v.size(-1)});
    return linear(out, L.o, L.o_bias);
  }
  const int64_t value_dim = v.size(-1);
  if (L.sinks.defined() && !options.attention_mask.defined() && value_dim <= head_dim + 1) {
    // GPT-OSS sinks with autograd, on the fused kernel: the sink is one more key that every query
    // sees, with value 0. q' = [q, 1], k' = [k, 0], sink key [0, sink / scale]: q'.k' = q.k and
    // q'.sink key x scale = sink, so the kernel's softmax is the one over [scores, sink], and the
    // gradients of q, k, v and the sinks flow through it (the sink's through its key). v is padded
    // to the same width (the kernel wants equal head sizes; else torch falls back to its math path).
    const auto f32 = q.options().dtype(torch::kFloat32);
    auto q_aug = torch::cat({q.to(torch::kFloat32), torch::ones({B, heads, T, 1}, f32)}, -1);
    auto sink_key = torch::cat({torch::zeros({1, heads, 1, head_dim}, f32),
                                (L.sinks.to(torch::kFloat32) / scale).view({1, heads, 1, 1})}, -1)
                        .expand({B, heads, 1, head_dim + 1});
    auto k_aug = torch::cat({sink_key, torch::cat({k.to(torch::kFloat32), torch::zeros({B, heads, S, 1}, f32)}, -1)}, 2);
    auto v_aug = torch::cat({torch::zeros({B, heads, 1, value_dim}, f32), v.to(torch::kFloat32)}, 2);
    v_aug = torch::cat({v_aug, torch::zeros({B, heads, S + 1, head_dim + 1 - value_dim}, f32)}, -1);
    auto visible = torch::cat({torch::ones({1, 1, T, 1}, f32.dtype(torch::kBool)), causal_mask()}, -1);  // [1, 1, T, 1 + S]
    auto mask = torch::zeros({1, 1, T, S + 1}, f32).masked_fill(visible.logical_not(), -std::numeric_limits<float>::infinity());
    auto out = at::scaled_dot_product_attention(q_aug, k_aug, v_aug, mask, 0.0, false, scale).narrow(-1, 0, value_dim);
    out = out.to(dtype).transpose(1, 2).reshape({B, T, heads * value_dim});
    return linear(out, L.o, L.o_bias);
  }
  auto scores = torch::matmul(q.to(torch::kFloat32), k.to(torch::kFloat32).transpose(-1, -2)) * scale;  // [B, nh, T, S]
  auto allowed_BTS = causal_mask();  // [1, 1, T, S]
  if (options.attention_mask.defined())
    allowed_BTS = allowed_BTS.logical_and(options.attention_mask.narrow(1, 0, S).to(torch::kBool).view({B, 1, 1, S}));
  scores = scores.masked_fill(allowed_BTS.logical_not(), std::numeric_limits<float>::lowest());
  torch::Tensor probs;
  if (L.sinks.defined()) {  // GPT-OSS: one learned logit per head joins the softmax, then is dropped
    auto sink = L.sinks.to(torch::kFloat32).view({1, heads, 1, 1}).expand({B, heads, T, 1});
    auto combined = torch::cat({scores, sink}, -1);
    combined = combined - std::get<0>(combined.max(-1, true));
    probs = torch::softmax(combined, -1).narrow(-1, 0, S);
  } else {
    probs = torch::softmax(scores, -1);
  }
  auto out = torch::matmul(probs.to(v.scalar_type()), v);  // [B, nh, T, hd]
  out = out.transpose(1, 2).reshape({B, T, heads * v.size(-1)});
  return linear(out, L.o, L.o_bias);
}

torch::Tensor Transformer::moe(const ModelWeights& weights, int64_t l, const torch::Tensor& x_BTH,
                               const ForwardOptions& options, ForwardOutput& output) const {
  const LayerWeights& L = weights.layers[l];
  const int64_t B = x_BTH.size(0), T = x_BTH.size(1), H = x_BTH.size(2);
  auto x_NH = x_BTH.reshape({B * T, H});
  auto logits_NE = linear(x_NH, L.router, L.router_bias);  // [N, E]
  if (options.router_noise_std > 0) {
    if (!options.router_noise_generator) fail("internal: router noise without a generator (ForwardOptions::router_noise_generator)");
    auto noise = torch::randn(logits_NE.sizes(), *options.router_noise_generator, torch::kFloat32);
    logits_NE = logits_NE + noise.to(logits_NE.device(), logits_NE.scalar_type()) * options.router_noise_std;
  }
  LayerRouting record;
  record.layer = l;
  record.logits = logits_NE;
  auto forced = options.force_expert.find(l);
  if (forced != options.force_expert.end()) {
    record.routing = route_all_to(B * T, spec_.moe.num_experts, forced->second, x_NH.device());
  } else {
    std::optional<torch::Tensor> bias;
    if (L.score_correction_bias.defined()) bias = L.score_correction_bias;
    auto extra = options.selection_bias.find(l);
    if (extra != options.selection_bias.end()) bias = bias ? *bias + extra->second : extra->second;
    record.routing = route(logits_NE, router_options_, bias);
  }
  auto out_NH = options.expert_parallel
                    ? run_experts_parallel(x_NH, record.routing.expert_ids, record.routing.weights, L.experts, activation_,
                                           *options.expert_parallel)
                    : run_experts(x_NH, record.routing.expert_ids, record.routing.weights, L.experts, activation_);
  if (L.shared.defined()) {
    auto shared_NH = run_mlp(x_NH, L.shared, activation_);
    switch (spec_.moe.shared_gate) {
      case SharedGateKind::SigmoidGate: shared_NH = torch::sigmoid(linear(x_NH, L.shared_gate, torch::Tensor())) * shared_NH; break;
      case SharedGateKind::FixedScale: shared_NH = shared_NH * spec_.moe.shared_scale; break;
      case SharedGateKind::LearnedScale: shared_NH = shared_NH * L.shared_scale; break;
      case SharedGateKind::None: break;
    }
    out_NH = out_NH + shared_NH;
  }
  output.routing.push_back(std::move(record));
  return out_NH.view({B, T, H});
}

ForwardOutput Transformer::forward(const torch::Tensor& ids, const ForwardOptions& options) const {
  return forward_with(weights_, ids, options);
}

torch::Tensor Transformer::embed_input(const ModelWeights& weights, const torch::Tensor& ids, const ForwardOptions& options,
                                       torch::Tensor& positions_T) const {
  if (ids.dim() != 2) fail("token ids must be [batch, time]");
  const int64_t T = ids.size(1);
  if (T == 0) fail("cannot run the model on an empty sequence");
  if (options.cache && options.cache->keys.empty()) {
    options.cache->keys.resize(spec_.num_layers);
    options.cache->values.resize(spec_.num_layers);
  }
  const int64_t past = options.cache ? options.cache->length() : 0;
  const int64_t max_positions = spec_.positions == PositionKind::Learned ? weights.position_embed.size(0) : 0;
  if (max_positions && past + T > max_positions)
    fail("sequence of ", past + T, " tokens exceeds the model's ", max_positions, " learned positions");
  auto ids_dev = ids.to(device(), torch::kInt64);
  // The embedding's rows (a ZeRO-3 shard holds only some of them: the spec says how many).
  const int64_t vocab = options.layer_source ? spec_.vocab_size : weights.embed.size(0);
  if ((ids_dev < 0).any().item<bool>() || (ids_dev >= vocab).any().item<bool>()) fail("token id out of range [0, ", vocab, ")");
  positions_T = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kInt64).device(device()));
  auto h = options.layer_source ? options.layer_source->embed(weights, ids_dev) : torch::embedding(weights.embed, ids_dev);  // [B, T, H]
  if (spec_.positions == PositionKind::Learned) h = h + torch::embedding(weights.position_embed, positions_T).unsqueeze(0);
  return h;
}

torch::Tensor Transformer::run_layer(const ModelWeights& weights, int64_t l, const torch::Tensor& h_in, const torch::Tensor& positions_T,
                                     const ForwardOptions& options, ForwardOutput& output) const {
  const LayerWeights& L = weights.layers[l];
  if (options.record_layer_inputs) output.layer_inputs.push_back(h_in);
  auto h = h_in + attention(weights, l, norm(h_in, L.attn_norm, L.attn_norm_bias), positions_T, options);
  auto x = norm(h, L.ffn_norm, L.ffn_norm_bias);
  return h + (spec_.is_moe[l] ? moe(weights, l, x, options, output) : run_mlp(x, L.mlp, activation_));
}

torch::Tensor Transformer::run_gathered_layer(const ModelWeights& weights, int64_t l, const torch::Tensor& h, const torch::Tensor& positions_T,
                                              const ForwardOptions& options, ForwardOutput& output) const {
  // The layer with its weights made whole for this call only (run_layer reads nothing else of them).
  LayerFunction layer = [this, l, held = weights.layers[l], positions_T, options](const torch::Tensor& h_in, ForwardOutput& out) {
    return run_layer(holding_layer(l, options.layer_source->gather(l, held)), l, h_in, positions_T, options, out);
  };
  bool trains = h.requires_grad();
  if (!trains) {
    ModelWeights probe = holding_layer(l, weights.layers[l]);
    for (const auto& entry : runtime_tensors())
      if (entry.scope == TensorScope::Layer) {
        const torch::Tensor& t = entry.get(probe, l);
        trains = trains || (t.defined() && t.requires_grad());
      }
  }
  // Nothing below needs a gradient and nothing here trains: a plain gathered forward.
  if (!torch::GradMode::is_enabled() || !trains) return layer(h, output);
  return run_recomputed(layer, h, output, options.router_noise_generator);
}

void Transformer::finish_output(const ModelWeights& weights, torch::Tensor h, const ForwardOptions& options, ForwardOutput& output) const {
  if (options.last_token_logits_only) h = h.narrow(1, h.size(1) - 1, 1);
  h = norm(h, weights.final_norm, weights.final_norm_bias);
  if (options.hidden_only) {
    output.hidden = h;
    return;
  }
  const torch::Tensor head = options.layer_source ? options.layer_source->head(weights) : weights.lm_head;
  output.logits = linear(h, head, torch::Tensor()).to(torch::kFloat32);  // [B, T, V]
}

ForwardOutput Transformer::forward_with(const ModelWeights& weights, const torch::Tensor& ids,
                                        const ForwardOptions& options) const {
  torch::Tensor positions_T;
  auto h = embed_input(weights, ids, options, positions_T);
  if (streaming_) release_model_level(weights);
  ForwardOutput output;
  for (int64_t l = 0; l < spec_.num_layers; ++l) {
    h = options.layer_source ? run_gathered_layer(weights, l, h, positions_T, options, output)
                             : run_layer(weights, l, h, positions_T, options, output);
    if (streaming_) release_layer(weights, l);
  }
  finish_output(weights, h, options, output);
  if (streaming_ && !options.hidden_only) release_model_level(weights);
  return output;
}

int64_t Transformer::layer_major_group_tokens(int64_t cap_bytes) const {
  if (!streaming_ || cap_bytes <= 0) return 0;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < spec_.num_layers; ++l) moe_layers += spec_.is_moe[l] ? 1 : 0;
  const bool moe = moe_layers > 0;
  const int64_t H = spec_.hidden_size, K = moe ? spec_.moe.top_k : 1, E = spec_.moe.num_experts;
  const int64_t R = 2 * (moe ? spec_.moe.moe_intermediate_size : spec_.intermediate_size);
  // fp32 upper bound per token: residual, normed input and layer output; one layer's dispatched rows
  // (input, pre-activations, output per pick); each MoE layer's logits and probabilities, ids and weights.
  const int64_t bytes_per_token = 4 * (3 * H + K * (2 * H + R)) + moe_layers * (2 * E * 4 + 2 * K * 8);
  const int64_t group_bytes = std::min<int64_t>(cap_bytes, static_cast<int64_t>(streaming_spare_bytes_ / 2));
  return group_bytes > 0 ? std::max<int64_t>(group_bytes / bytes_per_token, 1) : 0;
}

torch::Tensor Transformer::head_logits(const torch::Tensor& hidden) const {
  return linear(hidden, weights_.lm_head, torch::Tensor()).to(torch::kFloat32);
}

void Transformer::end_streamed_pass() const {
  if (streaming_) release_model_level(weights_);
}

std::vector<ForwardOutput> Transformer::forward_layer_major(const std::vector<torch::Tensor>& ids, const ForwardOptions& options) const {
  if (options.cache) fail("internal: a layer-major pass keeps no KV cache");
  if (ids.empty()) return {};
  // One batch of every row: each layer runs once over all of them (its weights read, its packed
  // experts decoded and its expert GEMMs issued once for the whole group).
  std::vector<int64_t> rows;
  for (const auto& t : ids) {
    if (t.dim() != 2 || t.size(1) != ids[0].size(1)) fail("internal: a layer-major group needs batches of one length");
    rows.push_back(t.size(0));
  }
  ForwardOutput all = forward(torch::cat(ids, 0), options);
  std::vector<ForwardOutput> outputs(ids.size());
  const int64_t T = ids[0].size(1);
  int64_t at = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    ForwardOutput& o = outputs[i];
    auto batch = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, at, rows[i]) : t; };           // [B, ...]
    auto tokens = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, at * T, rows[i] * T) : t; };  // [B*T, ...]
    o.logits = batch(all.logits);
    o.hidden = batch(all.hidden);
    for (const auto& h : all.layer_inputs) o.layer_inputs.push_back(batch(h));
    for (const auto& r : all.routing) {
      LayerRouting part;
      part.layer = r.layer;
      part.logits = tokens(r.logits);
      part.routing.expert_ids = tokens(r.routing.expert_ids);
      part.routing.weights = tokens(r.routing.weights);
      part.routing.probs = tokens(r.routing.probs);
      o.routing.push_back(std::move(part));
    }
    at += rows[i];
  }
  return outputs;
}

}  // namespace moeforge::model
