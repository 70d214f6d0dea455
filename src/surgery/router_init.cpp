// Initial router rows (see router_init.h). The prompt modes run the dense model with the runtime,
// one prompt at a time: hidden / hidden_avg read the residual stream entering each layer,
// ffn_input runs the model as a one-expert MoE whose router is the identity (every token forced to
// expert 0), so the recorded router logits are exactly the FFN inputs while the layer still
// computes the dense FFN.
#include "surgery/router_init.h"

#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "model/transformer.h"
#include "surgery/surgery_util.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::surgery {
namespace {

std::vector<int64_t> mergekit_ids(const tokenizer::Tokenizer& tok, const std::string& text) {
  std::string full = text;
  if (auto bos = tok.bos_id())
    if (auto bos_text = tok.id_to_token(*bos)) full = *bos_text + text;
  std::vector<int64_t> ids;
  for (int32_t id : tok.encode(full, /*add_special_tokens=*/false)) ids.push_back(id);
  return ids;
}

std::vector<std::vector<int64_t>> read_prompt_list(const nlohmann::json& list, const std::string& where,
                                                   const std::filesystem::path& tokenizer_dir,
                                                   std::optional<tokenizer::Tokenizer>& tok) {
  if (!list.is_array()) fail(where, ": expected a list of prompts");
  std::vector<std::vector<int64_t>> out;
  for (const auto& item : list) {
    std::vector<int64_t> ids;
    if (item.is_string()) {
      if (!tok) tok = tokenizer::Tokenizer::load(tokenizer_dir);
      ids = mergekit_ids(*tok, item.get<std::string>());
    } else if (item.is_array()) {
      for (const auto& id : item) {
        if (!id.is_number_integer()) fail(where, ": token ids must be integers");
        ids.push_back(id.get<int64_t>());
      }
    } else {
      fail(where, ": a prompt is a string or a list of token ids");
    }
    if (ids.empty()) fail(where, ": empty prompt");
    out.push_back(std::move(ids));
  }
  return out;
}

ExpertPrompts read_entry(const nlohmann::json& entry, const std::string& name, const std::string& where,
                         const std::filesystem::path& tokenizer_dir, std::optional<tokenizer::Tokenizer>& tok) {
  ExpertPrompts p;
  p.name = name;
  if (entry.is_object()) {
    if (!entry.contains("positive")) fail(where, ": missing 'positive'");
    p.positive = read_prompt_list(entry["positive"], where + ".positive", tokenizer_dir, tok);
    if (entry.contains("negative")) p.negative = read_prompt_list(entry["negative"], where + ".negative", tokenizer_dir, tok);
  } else {
    p.positive = read_prompt_list(entry, where, tokenizer_dir, tok);
  }
  if (p.positive.empty()) fail(where, ": an expert needs at least one positive prompt");
  return p;
}

using LayerVectors = std::map<int64_t, torch::Tensor>;  // layer -> [H] float32

torch::Tensor unit(const torch::Tensor& v) { return v / v.norm().clamp_min(1e-8); }

// What one set of prompts (an expert's positive or negative list) says about each layer.
class PromptReader {
 public:
  PromptReader(RouterInit mode, const ModelSpec& dense, const CheckpointStore& store, const std::vector<int64_t>& layers)
      : mode_(mode), layers_(layers) {
    model::ModelWeights weights = model::load_model_weights(dense, store, model::LoadOptions{});
    ModelSpec spec = dense;
    if (mode == RouterInit::FfnInput) {
      const int64_t H = spec.hidden_size;
      spec.moe.num_experts = 1;
      spec.moe.top_k = 1;
      spec.moe.router = RouterKind::SoftmaxThenTopK;
      spec.moe.norm_topk_prob = false;
      for (int64_t l : layers) {
        spec.is_moe[l] = true;
        model::LayerWeights& L = weights.layers[l];
        L.router = torch::eye(H, torch::kFloat32);       // logits = FFN input [N, H]
        L.experts.w_in = L.mlp.w_in.unsqueeze(0);        // [1, R, H]
        L.experts.w_out = L.mlp.w_out.unsqueeze(0);      // [1, H, F]
        if (L.mlp.b_in.defined()) L.experts.b_in = L.mlp.b_in.unsqueeze(0);
        if (L.mlp.b_out.defined()) L.experts.b_out = L.mlp.b_out.unsqueeze(0);
        L.mlp = model::MlpWeights{};
        options_.force_expert[l] = 0;
      }
    }
    options_.record_layer_inputs = mode == RouterInit::Hidden || mode == RouterInit::HiddenAvg;
    vocab_ = spec.vocab_size;
    runner_ = std::make_unique<model::Transformer>(spec, std::move(weights));
  }

  LayerVectors read(const std::vector<std::vector<int64_t>>& prompts) const {
    torch::NoGradGuard no_grad;
    LayerVectors sums;
    auto add = [&](int64_t l, const torch::Tensor& v) { sums[l] = sums.count(l) ? sums[l] + v : v; };
    int64_t tokens = 0;
    for (const auto& ids : prompts) {
      for (int64_t id : ids)
        if (id < 0 || id >= vocab_) fail("prompt token id ", id, " is outside [0, ", vocab_, ")");
      auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      tokens += static_cast<int64_t>(ids.size());
      if (mode_ == RouterInit::CheapEmbed) {
        auto s = torch::embedding(runner_->weights().embed, input[0]).to(torch::kFloat32).sum(0);
        for (int64_t l : layers_) add(l, s);
        continue;
      }
      auto out = runner_->forward(input, options_);
      if (mode_ == RouterInit::FfnInput) {
        for (const auto& r : out.routing) add(r.layer, r.logits.to(torch::kFloat32).sum(0));
        continue;
      }
      for (int64_t l : layers_) {
        auto x = out.layer_inputs.at(static_cast<size_t>(l))[0].to(torch::kFloat32);  // [T, H]
        add(l, mode_ == RouterInit::Hidden ? x[-1] : x.mean(0));
      }
    }
    for (auto& [l, s] : sums) {
      if (mode_ == RouterInit::FfnInput) s = s / static_cast<double>(std::max<int64_t>(tokens, 1));  // mean over tokens
      else if (mode_ == RouterInit::CheapEmbed) s = unit(s);                                         // normalised sum
      else s = s / static_cast<double>(prompts.size());                                             // mean over prompts
    }
    return sums;
  }

 private:
  RouterInit mode_;
  std::vector<int64_t> layers_;
  int64_t vocab_ = 0;
  model::ForwardOptions options_;
  std::unique_ptr<model::Transformer> runner_;
};

}  // namespace

std::vector<ExpertPrompts> parse_prompts(const nlohmann::json& root, const std::string& label,
                                         const std::filesystem::path& tokenizer_dir,
                                         const std::vector<std::string>& expert_names, int64_t num_experts) {
  std::optional<tokenizer::Tokenizer> tok;
  std::vector<ExpertPrompts> out;
  if (root.is_array()) {
    if (static_cast<int64_t>(root.size()) != num_experts)
      fail(label, ": has prompts for ", root.size(), " experts; the output has ", num_experts);
    for (size_t e = 0; e < root.size(); ++e)
      out.push_back(read_entry(root[e], std::to_string(e), cat(label, "[", e, "]"), tokenizer_dir, tok));
  } else if (root.is_object()) {
    if (expert_names.empty()) fail(label, ": expected a list with one entry per expert");
    for (const auto& name : expert_names) {
      if (!root.contains(name)) fail(label, ": no prompts for expert '", name, "'");
      out.push_back(read_entry(root[name], name, cat(label, ".", name), tokenizer_dir, tok));
    }
    for (const auto& [key, value] : root.items())
      if (std::find(expert_names.begin(), expert_names.end(), key) == expert_names.end())
        fail(label, ": prompts for unknown expert '", key, "'");
  } else {
    fail(label, ": expected a JSON list or object of per-expert prompts");
  }
  return out;
}

std::vector<ExpertPrompts> read_prompts_file(const std::filesystem::path& file, const std::filesystem::path& tokenizer_dir,
                                             const std::vector<std::string>& expert_names, int64_t num_experts) {
  return parse_prompts(read_json_file(file), file.string(), tokenizer_dir, expert_names, num_experts);
}

std::map<int64_t, std::vector<float>> initial_router_rows(const RouterInitOptions& o, const ModelSpec& dense,
                                                          const CheckpointStore& store, const std::vector<int64_t>& layers,
                                                          int64_t E, const std::vector<ExpertPrompts>& prompts) {
  const int64_t H = dense.hidden_size;
  const size_t n = static_cast<size_t>(E * H);
  std::map<int64_t, std::vector<float>> rows;
  if (!router_needs_prompts(o.mode)) {
    for (int64_t l : layers) {
      const uint64_t seed = mix_seed(o.seed, 0x7007e7, static_cast<uint64_t>(l));
      if (o.mode == RouterInit::Normal) rows[l] = normal_floats(n, 0.0, o.std, seed);
      else if (o.mode == RouterInit::Random) rows[l] = normal_floats(n, 0.0, 1.0, seed);
      else if (o.mode == RouterInit::UniformRandom) rows[l] = uniform_floats(n, 1.0 / std::sqrt(static_cast<double>(H)), seed);
      else rows[l].assign(n, 0.0f);
    }
    return rows;
  }
  if (static_cast<int64_t>(prompts.size()) != E)
    fail("router ", to_string(o.mode), ": prompts for ", prompts.size(), " experts; the output has ", E);
  PromptReader reader(o.mode, dense, store, layers);
  for (int64_t l : layers) rows[l].assign(n, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const LayerVectors pos = reader.read(prompts[e].positive);
    const LayerVectors neg = prompts[e].negative.empty() ? LayerVectors{} : reader.read(prompts[e].negative);
    for (int64_t l : layers) {
      auto v = pos.at(l);
      if (neg.count(l)) v = v - neg.at(l);
      auto c = unit(v).contiguous();
      std::copy(c.data_ptr<float>(), c.data_ptr<float>() + H, rows[l].begin() + e * H);
    }
  }
  return rows;
}

}  // namespace moeforge::surgery
