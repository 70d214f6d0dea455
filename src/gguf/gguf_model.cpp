#include "gguf/gguf_model.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "common/error.h"
#include "common/strings.h"
#include "gguf/gguf_encode.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

using nlohmann::json;
using Store = std::shared_ptr<const CheckpointStore>;

// How llama.cpp's converter treats each family it shares with us.
struct ArchInfo {
  const char* arch;
  bool permute_qk;       // LlamaModel undoes HF's rotate-half q/k row order (llama.cpp rotates pairs)
  const char* ffn_norm;  // the pre-MLP norm's name
  bool llama_spm;        // tries a SentencePiece-style tokenizer.json before byte-level BPE
  const char* byte_level_pre;
};

const ArchInfo* arch_of(const std::string& model_type) {
  static const std::map<std::string, ArchInfo> table = {
      {"llama", {"llama", true, "ffn_norm", true, "gpt-2"}},
      {"mistral", {"llama", true, "ffn_norm", true, "gpt-2"}},
      {"mixtral", {"llama", true, "ffn_norm", true, "gpt-2"}},
      {"qwen2", {"qwen2", false, "ffn_norm", false, "gpt-2"}},
      {"qwen3", {"qwen3", false, "ffn_norm", false, "gpt-2"}},
      {"qwen2_moe", {"qwen2moe", false, "ffn_norm", false, "gpt-2"}},
      {"qwen3_moe", {"qwen3moe", false, "ffn_norm", false, "gpt-2"}},
      {"olmoe", {"olmoe", false, "ffn_norm", false, "olmo"}},
      {"gpt_oss", {"gpt-oss", false, "post_attention_norm", false, "gpt-2"}},
  };
  auto it = table.find(model_type);
  return it == table.end() ? nullptr : &it->second;
}

// The reasons a model cannot become a GGUF file llama.cpp runs identically.
void check_expressible(const ModelSpec& spec, const ArchInfo* info, const std::string& where) {
  if (!info) {
    std::string why = "export-gguf writes llama, mistral, mixtral, qwen2, qwen3, qwen2_moe, qwen3_moe, olmoe and gpt_oss";
    if (spec.model_type == "gpt_neo" || spec.model_type == "gpt_neo_moe") why = "llama.cpp has no GPT-Neo architecture";
    if (spec.model_type == "deepseek_v3") why = "llama.cpp's deepseek2 architecture (latent attention) is not written by export-gguf yet";
    fail(where, ": model_type '", spec.model_type, "' cannot be exported to GGUF: ", why);
  }
  const std::string family = cat(where, ": llama.cpp's ", info->arch, " architecture ");
  if (spec.has_moe()) {
    for (size_t l = 0; l < spec.is_moe.size(); ++l)
      if (!spec.is_moe[l])
        fail(family, "has a MoE block in every layer, but layer ", l, " is dense (mlp_only_layers / decoder_sparse_step)");
    if (spec.moe.score_correction_bias) fail(family, "has no selection bias (moeforge_selection_bias)");
    const bool native_shared = spec.model_type == "qwen2_moe";
    if (spec.moe.shared_intermediate_size > 0 && !native_shared)
      fail(family, "has no shared expert (moeforge_shared_expert_* keys); export the model before add-shared-expert, "
           "or use a qwen2_moe target");
    if (native_shared && spec.moe.shared_intermediate_size > 0 && spec.moe.shared_gate != SharedGateKind::SigmoidGate)
      fail(family, "gates its shared expert with a sigmoid only (this model's gate is a moeforge extension)");
  }
  if (spec.mlp_bias) fail(family, "as export-gguf writes it has no MLP biases (mlp_bias)");
  if (spec.clip_qkv > 0) fail(family, "does not clamp q/k/v (clip_qkv ", spec.clip_qkv, ")");
  if (spec.rope.partial_rotary_factor != 1.0) fail(family, "as export-gguf writes it rotates whole heads (partial_rotary_factor)");
  if (spec.model_type == "olmoe" && spec.num_kv_heads != spec.num_heads)
    fail(family, "normalises k over the whole hidden size, so it needs num_key_value_heads == num_attention_heads (",
         spec.num_kv_heads, " vs ", spec.num_heads, ")");
}

// What llama.cpp will compute differently although the file is what its converter writes.
std::vector<std::string> caveats(const ModelSpec& spec, const ArchInfo& info) {
  std::vector<std::string> notes;
  // llama.cpp fixes whether the top-k expert weights are renormalised per architecture.
  const std::string arch = info.arch;
  if (spec.has_moe() && arch != "gpt-oss") {
    const bool renormalises = arch == "llama" || arch == "qwen3moe";
    if (spec.moe.norm_topk_prob != renormalises)
      notes.push_back(cat("llama.cpp's ", arch, renormalises ? " always renormalises" : " never renormalises",
                          " the top-k expert weights, this model ", spec.moe.norm_topk_prob ? "does" : "does not",
                          " (norm_topk_prob): llama.cpp will weight the experts differently"));
  }
  if (arch == "gpt-oss") return notes;  // alternating sliding windows are native there
  int64_t window = 0;
  for (int64_t w : spec.sliding_window) window = std::max(window, w);
  if (window > 0)
    notes.push_back(cat("llama.cpp's ", info.arch, " architecture has no sliding window: it computes what this model does ",
                        "only for contexts up to ", window, " tokens (the converter writes the same file)"));
  return notes;
}

// --- metadata -------------------------------------------------------------------------------------

// The converter's find_hparam: the first key present (its value, null when it is null).
const json* hparam(const json& config, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (config.contains(key)) return config[key].is_null() ? nullptr : &config[key];
  return nullptr;
}

void set_u32(GgufMetadata& md, const std::string& key, const json* value) {
  if (value && value->is_number()) md.set(key, static_cast<uint32_t>(value->get<double>()));
}
void set_f32(GgufMetadata& md, const std::string& key, const json* value) {
  if (value && value->is_number()) md.set(key, static_cast<float>(value->get<double>()));
}

// TextModel's rope_parameters: rope_parameters or rope_scaling, with the top-level theta, type,
// partial factor and original context mirrored in.
json rope_parameters(const json& config) {
  json rope = config.contains("rope_parameters") ? config["rope_parameters"] : config.value("rope_scaling", json());
  if (!rope.is_object()) rope = json::object();
  if (!rope.contains("full_attention") && !rope.contains("sliding_attention")) {
    if (const json* local = hparam(config, {"local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta", "rope_local_base_freq"}))
      rope["sliding_attention"] = json{{"rope_theta", *local}};
    if (const json* theta = hparam(config, {"global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"});
        theta && !rope.contains("rope_theta"))
      rope["rope_theta"] = *theta;
    if (!rope.contains("rope_type") && rope.contains("type") && !rope["type"].is_null()) rope["rope_type"] = rope["type"];
    if (const json* p = hparam(config, {"partial_rotary_factor", "rope_pct", "rope_percent"}); p && !rope.contains("partial_rotary_factor"))
      rope["partial_rotary_factor"] = *p;
    if (const json* o = hparam(config, {"original_max_position_embeddings"}); o && !rope.contains("original_max_position_embeddings"))
      rope["original_max_position_embeddings"] = *o;
  }
  return rope;
}

const json* field(const json& object, const char* key) {
  return object.is_object() && object.contains(key) && !object[key].is_null() ? &object[key] : nullptr;
}

void add_text_model_keys(const json& config, const std::string& a, const json& rope, GgufMetadata& md) {
  set_u32(md, a + ".block_count", hparam(config, {"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  set_u32(md, a + ".context_length", hparam(config, {"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"}));
  set_u32(md, a + ".embedding_length", hparam(config, {"hidden_size", "n_embd", "dim"}));
  set_u32(md, a + ".feed_forward_length", hparam(config, {"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"}));
  set_u32(md, a + ".attention.head_count", hparam(config, {"num_attention_heads", "n_head", "n_heads"}));
  set_u32(md, a + ".attention.head_count_kv", hparam(config, {"num_key_value_heads", "n_kv_heads"}));
  const json& params = rope.contains("full_attention") ? rope["full_attention"] : rope;
  if (const json* type_value = field(params, "rope_type"); type_value && type_value->is_string()) {
    const std::string type = type_value->get<std::string>();
    const json* factor = field(params, "factor");
    if (type == "linear" && factor) {
      md.set(a + ".rope.scaling.type", std::string("linear"));
      set_f32(md, a + ".rope.scaling.factor", factor);
    } else if (type == "yarn" && factor) {
      md.set(a + ".rope.scaling.type", std::string("yarn"));
      set_f32(md, a + ".rope.scaling.factor", factor);
      set_u32(md, a + ".rope.scaling.original_context_length", field(params, "original_max_position_embeddings"));
      set_f32(md, a + ".rope.scaling.yarn_ext_factor", field(params, "extrapolation_factor"));
      const json* attn = field(params, "attention_factor");
      set_f32(md, a + ".rope.scaling.yarn_attn_factor", attn ? attn : field(params, "attn_factor"));
      set_f32(md, a + ".rope.scaling.yarn_beta_fast", field(params, "beta_fast"));
      set_f32(md, a + ".rope.scaling.yarn_beta_slow", field(params, "beta_slow"));
    } else if (type == "su" || type == "longrope") {
      md.set(a + ".rope.scaling.type", std::string("longrope"));
    }
  }
  set_f32(md, a + ".rope.freq_base", field(params, "rope_theta"));
  if (const json* swa = field(rope, "sliding_attention")) set_f32(md, a + ".rope.freq_base_swa", field(*swa, "rope_theta"));
  set_f32(md, a + ".attention.layer_norm_rms_epsilon", hparam(config, {"rms_norm_eps", "norm_eps"}));
  set_f32(md, a + ".attention.layer_norm_epsilon", hparam(config, {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}));
  set_u32(md, a + ".expert_count", hparam(config, {"num_local_experts", "num_experts", "n_routed_experts"}));
  set_u32(md, a + ".expert_used_count", hparam(config, {"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}));
  if (const json* f = hparam(config, {"score_function", "scoring_func", "score_func", "moe_router_activation", "moe_router_activation_func", "expert_selection_fn"})) {
    const std::string func = f->is_string() ? f->get<std::string>() : "";
    if (func == "softmax") md.set(a + ".expert_gating_func", uint32_t{1});
    else if (func == "sigmoid") md.set(a + ".expert_gating_func", uint32_t{2});
    else fail("config.json: unsupported expert score gating function '", f->dump(), "'");
  }
  if (const json* head_dim = field(config, "head_dim")) {
    set_u32(md, a + ".attention.key_length", head_dim);
    set_u32(md, a + ".attention.value_length", head_dim);
  }
}

// --- tensor types -------------------------------------------------------------------------------

GgmlType requested_type(GgufFileType type) {
  switch (type) {
    case GgufFileType::F32: return GgmlType::F32;
    case GgufFileType::F16: return GgmlType::F16;
    case GgufFileType::BF16: return GgmlType::BF16;
    case GgufFileType::Q8_0: return GgmlType::Q8_0;
  }
  return GgmlType::F32;
}

// The converter's rule: 1-D tensors, norms, biases and routers stay F32; Q8_0 falls back to F16
// where a row is not a multiple of its 32-value block.
GgmlType pick_type(GgufFileType file_type, const std::string& name, size_t ndims, uint64_t row) {
  if (ndims <= 1 || ends_with(name, "_norm.weight")) return GgmlType::F32;
  if (ends_with(name, ".ffn_gate_inp.weight") || ends_with(name, ".ffn_gate_inp_shexp.weight")) return GgmlType::F32;
  if (!ends_with(name, ".weight")) return GgmlType::F32;
  GgmlType type = requested_type(file_type);
  if (type == GgmlType::Q8_0 && row % 32 != 0) type = GgmlType::F16;
  return type;
}

std::vector<uint64_t> ggml_dims(const std::vector<int64_t>& shape) {
  std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
  if (dims.empty()) dims.push_back(1);
  return dims;
}

void append_encoded(GgufFileWriter& out, GgmlType type, const float* values, size_t count) {
  std::vector<uint8_t> bytes;
  encode_ggml(type, values, count, bytes);
  out.append(bytes.data(), bytes.size());
}

// Rows of each head reordered from HF's [first halves | second halves] to llama.cpp's interleaved
// pairs (the converter's LlamaModel.permute; `heads` are the kv heads for k).
std::vector<float> permute_rows(const std::vector<float>& in, int64_t rows, int64_t cols, int64_t heads) {
  std::vector<float> out(in.size());
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t src = h * head_dim + j * half + i, dst = h * head_dim + i * 2 + j;
        std::copy_n(in.begin() + src * cols, cols, out.begin() + dst * cols);
      }
  return out;
}

class Planner {
 public:
  Planner(const ModelSpec& spec, Store store, GgufFileType type, const ArchInfo& info)
      : spec_(spec), store_(std::move(store)), type_(type), info_(info),
        names_(names_for(adapter_for(spec.model_type), spec.moe.layout)) {}

  std::vector<GgufTensorPlan> take() { return std::move(plans_); }

  std::optional<std::string> name_of(TensorRole role, int64_t layer = -1) const {
    auto it = names_.find(role);
    if (it == names_.end()) return std::nullopt;
    std::string name = format_tensor_name(it->second, layer);
    if (!store_->contains(name)) return std::nullopt;
    return name;
  }

  // A stored float tensor under its llama.cpp name (q/k rows permuted for `permute_heads` > 0).
  void plain(TensorRole role, int64_t layer, const std::string& gguf_name, bool required, int64_t permute_heads = 0) {
    auto hf = name_of(role, layer);
    if (!hf) {
      if (required) fail(store_->directory().string(), ": missing tensor for ", role_name(role), " of layer ", layer);
      return;
    }
    const StoredTensor tensor = store_->tensor(*hf);
    GgufTensorDecl decl{gguf_name, ggml_dims(tensor.info->shape), GgmlType::F32};
    decl.type = pick_type(type_, gguf_name, tensor.info->shape.size(), decl.dims[0]);
    const GgmlType ggml = decl.type;
    Store store = store_;
    const std::string name = *hf;
    plans_.push_back({decl, [store, name, ggml, permute_heads](GgufFileWriter& out) {
      const StoredTensor t = store->tensor(name);
      const uint64_t total = t.info->num_elements();
      const uint64_t row = t.info->shape.empty() ? 1 : static_cast<uint64_t>(t.info->shape.back());
      if (permute_heads > 0) {
        const std::vector<float> values = read_floats(t);
        const auto permuted = permute_rows(values, static_cast<int64_t>(total / row), static_cast<int64_t>(row), permute_heads);
        append_encoded(out, ggml, permuted.data(), permuted.size());
        return;
      }
      const uint64_t chunk_rows = std::max<uint64_t>(1, (uint64_t{1} << 22) / row);
      for (uint64_t begin = 0; begin < total; begin += chunk_rows * row) {
        const uint64_t count = std::min(total - begin, chunk_rows * row);
        const std::vector<float> values = read_float_range(t, begin, count);
        append_encoded(out, ggml, values.data(), values.size());
      }
    }});
  }

  enum class Proj { Gate, Up, Down };

  // The routed experts of one layer as one [E, rows, cols] tensor, expert by expert.
  void experts(int64_t layer, Proj proj, const std::string& gguf_name) {
    const uint64_t H = spec_.hidden_size, F = spec_.moe.moe_intermediate_size, E = spec_.moe.num_experts;
    GgufTensorDecl decl{gguf_name, proj == Proj::Down ? std::vector<uint64_t>{F, H, E} : std::vector<uint64_t>{H, F, E}};
    decl.type = pick_type(type_, gguf_name, 3, decl.dims[0]);
    const GgmlType ggml = decl.type;
    Store store = store_;
    const ModelSpec spec = spec_;
    plans_.push_back({decl, [store, spec, layer, proj, ggml](GgufFileWriter& out) {
      for (int64_t e = 0; e < spec.moe.num_experts; ++e) {
        const ExpertWeights w = read_expert(spec, *store, layer, e);
        const std::vector<float>& m = proj == Proj::Gate ? w.gate : proj == Proj::Up ? w.up : w.down;
        append_encoded(out, ggml, m.data(), m.size());
      }
    }});
  }

  // GPT-OSS MXFP4 experts, repacked into ggml's block layout: gate = even rows of gate_up, up = odd.
  void mxfp4_experts(int64_t layer, Proj proj, const std::string& gguf_name) {
    const bool down = proj == Proj::Down;
    const std::string blocks_name = *name_of(down ? TensorRole::ExpertsDownBlocks : TensorRole::ExpertsGateUpBlocks, layer);
    const std::string scales_name = *name_of(down ? TensorRole::ExpertsDownScales : TensorRole::ExpertsGateUpScales, layer);
    const StoredTensor blocks = store_->tensor(blocks_name);
    const auto& shape = blocks.info->shape;  // [E, R, G, 16]
    if (shape.size() != 4 || shape[3] != 16 || blocks.info->dtype != DType::U8)
      fail(blocks_name, ": expected MXFP4 blocks [E, rows, groups, 16] of U8");
    const int64_t E = shape[0], R = shape[1], G = shape[2];
    const int64_t rows_out = down ? R : R / 2;
    const int64_t first = proj == Proj::Up ? 1 : 0, step = down ? 1 : 2;
    GgufTensorDecl decl{gguf_name, {static_cast<uint64_t>(G * 32), static_cast<uint64_t>(rows_out), static_cast<uint64_t>(E)},
                        GgmlType::MXFP4};
    Store store = store_;
    plans_.push_back({decl, [store, blocks_name, scales_name, E, R, G, first, step](GgufFileWriter& out) {
      const ByteView b = store->tensor(blocks_name).bytes();
      const ByteView s = store->tensor(scales_name).bytes();
      if (b.size != static_cast<size_t>(E * R * G * 16) || s.size != static_cast<size_t>(E * R * G))
        fail(scales_name, ": MXFP4 scales do not match their blocks");
      std::vector<uint8_t> bytes;
      for (int64_t e = 0; e < E; ++e) {
        bytes.clear();
        for (int64_t r = first; r < R; r += step) {
          const int64_t row = e * R + r;
          repack_mxfp4_row(b.data + row * G * 16, s.data + row * G, G, bytes);
        }
        out.append(bytes.data(), bytes.size());
      }
    }});
  }

  // GPT-OSS expert biases: gate_up_proj_bias [E, 2F] split even/odd, down_proj_bias [E, H].
  void expert_bias(int64_t layer, Proj proj, const std::string& gguf_name) {
    const bool down = proj == Proj::Down;
    const std::string name = *name_of(down ? TensorRole::ExpertsDownBias : TensorRole::ExpertsGateUpBias, layer);
    const StoredTensor t = store_->tensor(name);
    const int64_t E = t.info->shape.at(0), width = t.info->shape.at(1);
    const int64_t cols = down ? width : width / 2;
    const int64_t first = proj == Proj::Up ? 1 : 0, step = down ? 1 : 2;
    GgufTensorDecl decl{gguf_name, {static_cast<uint64_t>(cols), static_cast<uint64_t>(E)}, GgmlType::F32};
    Store store = store_;
    plans_.push_back({decl, [store, name, E, width, first, step](GgufFileWriter& out) {
      const std::vector<float> all = read_floats(store->tensor(name));
      std::vector<float> picked;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t c = first; c < width; c += step) picked.push_back(all[e * width + c]);
      append_encoded(out, GgmlType::F32, picked.data(), picked.size());
    }});
  }

  void generated(const std::string& gguf_name, std::vector<float> values) {
    GgufTensorDecl decl{gguf_name, {values.size()}, GgmlType::F32};
    plans_.push_back({decl, [values = std::move(values)](GgufFileWriter& out) {
      append_encoded(out, GgmlType::F32, values.data(), values.size());
    }});
  }

  void layer(int64_t l) {
    const std::string p = cat("blk.", l, ".");
    plain(TensorRole::AttnNorm, l, p + "attn_norm.weight", true);
    const int64_t q_heads = info_.permute_qk ? spec_.num_heads : 0, k_heads = info_.permute_qk ? spec_.num_kv_heads : 0;
    plain(TensorRole::Q, l, p + "attn_q.weight", true, q_heads);
    plain(TensorRole::QBias, l, p + "attn_q.bias", false, q_heads);
    plain(TensorRole::K, l, p + "attn_k.weight", true, k_heads);
    plain(TensorRole::KBias, l, p + "attn_k.bias", false, k_heads);
    plain(TensorRole::V, l, p + "attn_v.weight", true);
    plain(TensorRole::VBias, l, p + "attn_v.bias", false);
    plain(TensorRole::O, l, p + "attn_output.weight", true);
    plain(TensorRole::OBias, l, p + "attn_output.bias", false);
    plain(TensorRole::QNorm, l, p + "attn_q_norm.weight", false);
    plain(TensorRole::KNorm, l, p + "attn_k_norm.weight", false);
    plain(TensorRole::Sinks, l, p + "attn_sinks.weight", false);
    plain(TensorRole::FfnNorm, l, p + info_.ffn_norm + ".weight", true);
    if (!spec_.is_moe.empty() && spec_.is_moe[l]) {
      moe_layer(l, p);
    } else {
      plain(TensorRole::MlpGate, l, p + "ffn_gate.weight", true);
      plain(TensorRole::MlpUp, l, p + "ffn_up.weight", true);
      plain(TensorRole::MlpDown, l, p + "ffn_down.weight", true);
    }
  }

  void moe_layer(int64_t l, const std::string& p) {
    plain(TensorRole::Router, l, p + "ffn_gate_inp.weight", true);
    plain(TensorRole::RouterBias, l, p + "ffn_gate_inp.bias", false);
    const bool mxfp4 = spec_.moe.layout == ExpertLayout::Mxfp4;
    for (auto [proj, name] : {std::pair{Proj::Gate, "ffn_gate_exps"}, {Proj::Up, "ffn_up_exps"}, {Proj::Down, "ffn_down_exps"}}) {
      if (mxfp4) mxfp4_experts(l, proj, p + name + ".weight");
      else experts(l, proj, p + name + ".weight");
    }
    if (spec_.moe.expert_bias)
      for (auto [proj, name] : {std::pair{Proj::Gate, "ffn_gate_exps"}, {Proj::Up, "ffn_up_exps"}, {Proj::Down, "ffn_down_exps"}})
        expert_bias(l, proj, p + name + ".bias");
    if (spec_.moe.shared_intermediate_size > 0) {
      plain(TensorRole::SharedGate, l, p + "ffn_gate_shexp.weight", true);
      plain(TensorRole::SharedUp, l, p + "ffn_up_shexp.weight", true);
      plain(TensorRole::SharedDown, l, p + "ffn_down_shexp.weight", true);
      plain(TensorRole::SharedExpertGate, l, p + "ffn_gate_inp_shexp.weight", true);
    }
  }

 private:
  const ModelSpec& spec_;
  Store store_;
  GgufFileType type_;
  const ArchInfo& info_;
  NameTable names_;
  std::vector<GgufTensorPlan> plans_;
};

// LlamaModel.generate_extra_tensors: per-frequency factors of llama3 RoPE scaling.
std::vector<float> llama3_rope_factors(const json& params, int64_t dim) {
  const float base = static_cast<float>(params.value("rope_theta", 10000.0));
  const double factor = params.value("factor", 8.0), low = params.value("low_freq_factor", 1.0);
  const double high = params.value("high_freq_factor", 4.0);
  const double old_context = params.value("original_max_position_embeddings", 8192.0);
  const double low_wavelen = old_context / low, high_wavelen = old_context / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = static_cast<float>(2 * M_PI) / freq;
    if (wavelen < high_wavelen) factors.push_back(1.0f);
    else if (wavelen > low_wavelen) factors.push_back(static_cast<float>(factor));
    else {
      const float smooth = static_cast<float>((old_context / wavelen - low) / (high - low));
      factors.push_back(1.0f / ((1.0f - smooth) / static_cast<float>(factor) + smooth));
    }
  }
  return factors;
}

// gguf-py's model_weight_count_rounded_notation.
std::string rounded_count(double count) {
  double scaled;
  const char* suffix;
  if (count > 1e12) { scaled = count * 1e-12; suffix = "T"; }
  else if (count > 1e9) { scaled = count * 1e-9; suffix = "B"; }
  else if (count > 1e6) { scaled = count * 1e-6; suffix = "M"; }
  else { scaled = count * 1e-3; suffix = "K"; }
  std::string digits = std::to_string(static_cast<long long>(std::nearbyint(scaled)));
  const size_t first = digits.find_first_not_of('0');
  const size_t significant = first == std::string::npos ? 0 : digits.size() - first;
  const int fix = std::max(2 - static_cast<int>(significant), 0);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f%s", fix, scaled, suffix);
  return buffer;
}

// gguf-py's size_label from the tensor list ("8x4.2M" for 8 experts; experts counted once).
std::string size_label(const std::vector<GgufTensorPlan>& tensors) {
  uint64_t total = 0, shared = 0, expert = 0, expert_sum = 0, expert_tensors = 0;
  for (const auto& t : tensors) {
    const uint64_t size = t.decl.elements();
    total += size;
    if (t.decl.name.find("_exps.") != std::string::npos && t.decl.dims.size() >= 3) {
      const uint64_t count = t.decl.dims[2];
      expert += size / count;
      expert_sum += count;
      ++expert_tensors;
    } else {
      shared += size;
    }
  }
  const uint64_t count = expert_tensors ? expert_sum / expert_tensors : 0;
  if (count > 0) return cat(count, "x", rounded_count(static_cast<double>(shared + expert)));
  return rounded_count(static_cast<double>(total));
}

// gguf-py's Metadata.id_to_title, which names a model after its directory: '-' splits words, and
// all-lowercase words that are not versions or numbers are title-cased ("qwen2_moe" -> "Qwen2_Moe").
std::string id_to_title(const std::string& id) {
  std::string text = id;
  for (char& c : text)
    if (c == '-') c = ' ';
  std::vector<std::string> words;
  for (const std::string& w : split(text, ' '))
    if (!w.empty()) words.push_back(w);
  for (std::string& w : words) {
    bool cased = false, lower = true;
    for (char c : w) {
      if (std::isalpha(static_cast<unsigned char>(c))) {
        cased = true;
        if (std::isupper(static_cast<unsigned char>(c))) lower = false;
      }
    }
    const bool number = std::isdigit(static_cast<unsigned char>(w[0])) ||
                        (w[0] == 'v' && w.size() > 1 && std::isdigit(static_cast<unsigned char>(w[1])) &&
                         w.find_first_not_of("0123456789.", 1) == std::string::npos);
    if (!(cased && lower) || number) continue;
    bool start = true;  // str.title(): upper after any non-letter, lower inside a run of letters
    for (char& c : w) {
      const bool letter = std::isalpha(static_cast<unsigned char>(c));
      if (letter) c = start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      start = !letter;
    }
  }
  return join(words, " ");
}

uint32_t file_type_code(GgufFileType type, bool mxfp4) {
  if (mxfp4 && type != GgufFileType::Q8_0) return 38;  // MOSTLY_MXFP4_MOE
  switch (type) {
    case GgufFileType::F32: return 0;
    case GgufFileType::F16: return 1;
    case GgufFileType::BF16: return 32;
    case GgufFileType::Q8_0: return 7;
  }
  return 0;
}

}  // namespace

GgufFileType parse_gguf_file_type(const std::string& text) {
  if (text == "f32") return GgufFileType::F32;
  if (text == "f16") return GgufFileType::F16;
  if (text == "bf16") return GgufFileType::BF16;
  if (text == "q8_0") return GgufFileType::Q8_0;
  fail("--type: '", text, "' is not one of f32, f16, bf16, q8_0");
}

GgufModelPlan plan_gguf_model(const ModelSpec& spec, const json& config, Store store, GgufFileType type) {
  const std::string where = store->directory().string();
  const ArchInfo* info = arch_of(spec.model_type);
  check_expressible(spec, info, where);
  GgufModelPlan plan;
  plan.arch = info->arch;
  plan.notes = caveats(spec, *info);
  plan.vocab.vocab_size = spec.vocab_size;
  plan.vocab.allow_llama_spm = info->llama_spm;
  plan.vocab.write_space_prefix = info->llama_spm;
  plan.vocab.plain_byte_level_pre = info->byte_level_pre;
  const std::string& a = plan.arch;
  const json rope = rope_parameters(config);

  Planner planner(spec, store, type, *info);
  const json& params = rope.contains("full_attention") ? rope["full_attention"] : rope;
  const int64_t rope_dim = config.contains("head_dim") && config["head_dim"].is_number()
                               ? config["head_dim"].get<int64_t>()
                               : spec.hidden_size / spec.num_heads;
  if (a == "llama" && params.value("rope_type", std::string()) == "llama3")
    planner.generated("rope_freqs.weight", llama3_rope_factors(params, rope_dim));
  planner.plain(TensorRole::Embed, -1, "token_embd.weight", true);
  for (int64_t l = 0; l < spec.num_layers; ++l) planner.layer(l);
  planner.plain(TensorRole::FinalNorm, -1, "output_norm.weight", true);
  planner.plain(TensorRole::LmHead, -1, "output.weight", false);
  plan.tensors = planner.take();

  GgufMetadata& md = plan.metadata;
  md.set("general.architecture", a);
  md.set("general.type", std::string("model"));
  md.set("general.name", id_to_title(store->directory().filename().string()));
  md.set("general.size_label", size_label(plan.tensors));
  add_text_model_keys(config, a, rope, md);
  md.set("general.file_type", file_type_code(type, spec.moe.layout == ExpertLayout::Mxfp4 && spec.has_moe()));
  if (a == "llama") {
    set_u32(md, a + ".vocab_size", field(config, "vocab_size"));
    md.set(a + ".rope.dimension_count", static_cast<uint32_t>(rope_dim));
  } else if (a == "qwen2moe" || a == "qwen3moe") {
    set_u32(md, a + ".expert_feed_forward_length", field(config, "moe_intermediate_size"));
    if (a == "qwen2moe")
      set_u32(md, a + ".expert_shared_feed_forward_length", field(config, "shared_expert_intermediate_size"));
  } else if (a == "olmoe") {
    md.set(a + ".attention.layer_norm_rms_epsilon", 1e-5f);  // OlmoeModel writes it fixed
  } else if (a == "gpt-oss") {
    set_u32(md, a + ".attention.sliding_window", field(config, "sliding_window"));
    set_u32(md, a + ".expert_feed_forward_length", field(config, "intermediate_size"));
  }
  md.set("general.quantization_version", uint32_t{2});
  return plan;
}

}  // namespace moeforge
