// ModelSpec: everything the runtime, surgery and training need to know about one model, parsed
// once from config.json (+ generation_config.json) by the family adapter and validated at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moeforge {

enum class NormKind : uint8_t { RmsNorm, LayerNorm };  // LayerNorm has weight + bias

// Activation of the MLP / experts:
//   SiluGlu:          down(silu(gate x) * up x)
//   GeluNew:          down(gelu_tanh(up x))                (GPT-Neo c_fc = up, c_proj = down; no gate)
//   GptOssClampedGlu: g = min(gate x, limit); u = clamp(up x, -limit, limit);
//                     down(((u + 1) * g * sigmoid(alpha * g)))  with limit = 7, alpha = 1.702
enum class Activation : uint8_t { SiluGlu, GeluNew, GptOssClampedGlu };

// Where q/k RMSNorm is applied (weights named q_norm/k_norm):
//   PerHead (Qwen3, Qwen3-MoE):       on each head before RoPE, weight [head_dim]
//   WholeProjection (OLMoE):          on the whole q/k projection before splitting into heads,
//                                     weights [num_heads*head_dim] / [num_kv_heads*head_dim]
enum class QkNorm : uint8_t { None, PerHead, WholeProjection };

enum class PositionKind : uint8_t { Rope, Learned };  // Learned = GPT-Neo wpe [max_pos, H]

// RoPE frequency scaling, as transformers' modeling_rope_utils computes it.
enum class RopeScaling : uint8_t { None, Linear, Dynamic, Llama3, Yarn };

struct RopeSpec {
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;  // rotary dim = int(head_dim * factor)
  RopeScaling scaling = RopeScaling::None;
  double factor = 1.0;                 // linear / dynamic / llama3 / yarn
  // yarn: beta_fast/slow default 32/1; truncate default true (GPT-OSS sets false);
  // attention_factor (cos/sin multiplier) is filled in at parse time: given value, else
  // from mscale/mscale_all_dim, else 0.1*ln(factor)+1 (1 when factor <= 1).
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  double mscale = 0.0;          // 0 = absent
  double mscale_all_dim = 0.0;  // 0 = absent
  double attention_factor = 1.0;
  // llama3: low/high frequency factors.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;  // llama3 / yarn; 0 = not used
};

// How a layer's routed experts are stored on disk.
//   PerExpert:       one tensor per expert and projection (Mixtral w1/w3/w2, Qwen/OLMoE gate/up/down)
//   FusedConcat:     transformers v5 in-memory style `experts.gate_up_proj [E, 2F, H]` (gate rows
//                    0..F-1, up rows F..2F-1) + `experts.down_proj [E, H, F]`; read/written when a
//                    checkpoint carries them (a model saved by a custom v5 loop)
//   FusedInterleaved: GPT-OSS bf16: gate_up_proj [E, H, 2F] (gate = [..., 0::2], up = [..., 1::2])
//                    + gate_up_proj_bias [E, 2F], down_proj [E, F, H] + down_proj_bias [E, H]
//   Mxfp4:           GPT-OSS quantised: gate_up_proj_blocks [E, 2F, H/32, 16] u8 +
//                    gate_up_proj_scales [E, 2F, H/32] u8, down_proj_blocks [E, H, F/32, 16] +
//                    down_proj_scales [E, H, F/32]; biases as FusedInterleaved (bf16)
enum class ExpertLayout : uint8_t { PerExpert, FusedConcat, FusedInterleaved, Mxfp4 };

// How router logits become top-k expert weights.
//   SoftmaxThenTopK: p = softmax(logits over E); pick top-k of p; renormalise iff norm_topk_prob
//   TopKThenSoftmax: pick top-k of raw logits (+ router bias); weights = softmax over the k (GPT-OSS)
//   Sigmoid:         s = sigmoid(logits); selection on s + e_score_correction_bias (selection only,
//                    grouped by n_group/topk_group); weights = s of the chosen, renormalised iff
//                    norm_topk_prob, times routed_scaling_factor (DeepSeek-V3)
enum class RouterKind : uint8_t { SoftmaxThenTopK, TopKThenSoftmax, Sigmoid };

// How the shared expert's output is mixed in: out = routed + g(x) * shared(x).
//   None: no gate (g = 1); SigmoidGate: g = sigmoid(shared_expert_gate(x)), weight [1, H] (Qwen2-MoE);
//   FixedScale: g = shared_scale; LearnedScale: g = a learned scalar (moeforge's own extension).
enum class SharedGateKind : uint8_t { None, SigmoidGate, FixedScale, LearnedScale };

struct MoeSpec {
  int64_t num_experts = 0;             // routed experts per MoE layer (0 = dense model)
  int64_t top_k = 0;                   // num_experts_per_tok
  int64_t moe_intermediate_size = 0;   // F of one routed expert
  RouterKind router = RouterKind::SoftmaxThenTopK;
  bool router_bias = false;            // GPT-OSS router.bias [E] (added to the logits)
  bool norm_topk_prob = false;         // renormalise the top-k weights to sum 1
  bool score_correction_bias = false;  // DeepSeek-V3 e_score_correction_bias [E], selection only
  int64_t n_group = 1, topk_group = 1; // DeepSeek grouped selection
  double routed_scaling_factor = 1.0;
  double router_aux_loss_coef = 0.0;
  bool expert_bias = false;            // experts carry biases (GPT-OSS)
  ExpertLayout layout = ExpertLayout::PerExpert;
  // Shared (always-on) experts.
  int64_t num_shared_experts = 0;
  int64_t shared_intermediate_size = 0;  // total width of the shared MLP
  SharedGateKind shared_gate = SharedGateKind::None;
  double shared_scale = 1.0;             // FixedScale value
};

// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2); on when kv_lora_rank > 0.
//   q = q_b(rms_norm(q_a x)) (q_lora_rank > 0) or q_proj x, per head [q_nope | q_rope];
//   [c | k_rope] = kv_a x; kv_b(rms_norm(c)) per head [k_nope | v]; k_rope is one head shared by
//   all; k = [k_nope | rope(k_rope)], q = [q_nope | rope(q_rope)]; o_proj [H, nh*v_head_dim].
// RoPE covers qk_rope_head_dim dims (spec.head_dim = qk_rope_head_dim, as transformers sets it);
// rope_interleave rotates the pairs (x0, x1), (x2, x3), ... (transformers'
// apply_rotary_pos_emb_interleave: output [evens | odds], the same permutation for q and k).
struct MlaSpec {
  int64_t q_lora_rank = 0;   // 0 = plain q_proj [nh*qk_head_dim, H]
  int64_t kv_lora_rank = 0;  // 0 = no MLA
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool rope_interleave = false;
  bool enabled() const { return kv_lora_rank > 0; }
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

struct ModelSpec {
  std::string model_type;    // config.json "model_type": "llama", "gpt_oss", ...
  std::string source;        // where it came from (config path), for messages

  // Sizes.
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP width (dense layers; GPT-Neo: 4*H when null)
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;

  // Normalisation and activation.
  NormKind norm = NormKind::RmsNorm;
  double norm_eps = 1e-6;
  Activation activation = Activation::SiluGlu;
  double swiglu_limit = 7.0;    // GptOssClampedGlu only
  double swiglu_alpha = 1.702;  // GptOssClampedGlu only
  bool mlp_bias = false;        // dense MLP projections carry biases (Llama mlp_bias, GPT-Neo)

  // Attention.
  bool qkv_bias = false;
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::None;
  double clip_qkv = 0.0;           // OLMoE: clamp q/k/v to [-c, c]; 0 = off
  bool attention_sinks = false;    // GPT-OSS self_attn.sinks [num_heads]
  double attention_scale = 0.0;    // softmax scale; 1/sqrt(head_dim) by default, 1.0 for GPT-Neo
  // Per-layer sliding window: 0 = full attention; W > 0 = a query at i sees keys j with
  // i - W < j <= i (transformers' `kv_idx > q_idx - W`, GPT-Neo's window_size alike).
  std::vector<int64_t> sliding_window;
  MlaSpec mla;                     // multi-head latent attention (replaces q/k/v when enabled)

  // Positions.
  PositionKind positions = PositionKind::Rope;
  RopeSpec rope;

  bool tie_word_embeddings = false;  // lm_head.weight absent; logits use embed_tokens
  int64_t bos_token_id = -1;         // -1 = none
  std::vector<int64_t> eos_token_ids;  // generation_config.json wins over config.json
  int64_t pad_token_id = -1;

  // MoE. is_moe[l] tells whether layer l has a router + experts (else a dense MLP of
  // intermediate_size). Dense models: all false, moe.num_experts = 0.
  std::vector<bool> is_moe;
  MoeSpec moe;

  bool has_moe() const { return moe.num_experts > 0; }
  int64_t num_moe_layers() const;
  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t rotary_dim() const { return static_cast<int64_t>(head_dim * rope.partial_rotary_factor); }
  // Throws moeforge::Error naming the family on a broken invariant (top_k > num_experts, heads
  // not divisible by kv heads, MXFP4 dims not multiples of 32, ...). Adapters call it after parsing.
  void validate() const;
};

const char* to_string(NormKind value);
const char* to_string(Activation value);
const char* to_string(QkNorm value);
const char* to_string(PositionKind value);

// Refuses, naming `where`, a sequence length beyond the model's max_position_embeddings: always with
// learned positions (no embedding exists past them), with RoPE unless `allow_longer` (extrapolation
// by choice: --allow-long-seq / recipe "allow_long_seq").
void check_sequence_length(const ModelSpec& spec, int64_t seq_len, const std::string& where, bool allow_longer);
const char* to_string(RopeScaling value);
const char* to_string(ExpertLayout value);
const char* to_string(RouterKind value);
const char* to_string(SharedGateKind value);

}  // namespace moeforge
