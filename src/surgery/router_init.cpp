// The "hidden" router init (see hidden_router.h). The dense model is run as a one-expert MoE whose
// router is the identity, with every token forced to expert 0: the recorded router logits are then
// exactly the FFN inputs, and the layer still computes the dense FFN.
#include "surgery/hidden_router.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::surgery {
namespace {

std::vector<std::vector<int64_t>> read_prompt_list(const nlohmann::json& list, const std::string& where,
                                                   const std::filesystem::path& tokenizer_dir,
                                                   std::optional<tokenizer::Tokenizer>& tok) {
  if (!list.is_array()) fail(where, ": expected a list of prompts");
  std::vector<std::vector<int64_t>> out;
  for (const auto& item : list) {
    std::vector<int64_t> ids;
    if (item.is_string()) {
      if (!tok) tok = tokenizer::Tokenizer::load(tokenizer_dir);
      for (int32_t id : tok->encode(item.get<std::string>(), true)) ids.push_back(id);
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

}  // namespace

std::vector<ExpertPrompts> read_prompts_file(const std::filesystem::path& file, const std::filesystem::path& tokenizer_dir,
                                             const std::vector<std::string>& expert_names, int64_t num_experts) {
  nlohmann::json root = read_json_file(file);
  const std::string label = file.string();
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

std::map<int64_t, std::vector<float>> hidden_router_rows(const ModelSpec& dense_spec, const CheckpointStore& store,
                                                         const std::vector<int64_t>& layers,
                                                         const std::vector<ExpertPrompts>& prompts) {
  torch::NoGradGuard no_grad;
  model::ModelWeights weights = model::load_model_weights(dense_spec, store, model::LoadOptions{});
  ModelSpec spec = dense_spec;
  const int64_t H = spec.hidden_size;
  spec.moe.num_experts = 1;
  spec.moe.top_k = 1;
  spec.moe.router = RouterKind::SoftmaxThenTopK;
  spec.moe.norm_topk_prob = false;
  model::ForwardOptions options;
  for (int64_t l : layers) {
    spec.is_moe[l] = true;
    model::LayerWeights& L = weights.layers[l];
    L.router = torch::eye(H, torch::kFloat32);          // logits = FFN input [N, H]
    L.experts.w_in = L.mlp.w_in.unsqueeze(0);           // [1, R, H]
    L.experts.w_out = L.mlp.w_out.unsqueeze(0);         // [1, H, F]
    if (L.mlp.b_in.defined()) L.experts.b_in = L.mlp.b_in.unsqueeze(0);
    if (L.mlp.b_out.defined()) L.experts.b_out = L.mlp.b_out.unsqueeze(0);
    L.mlp = model::MlpWeights{};
    options.force_expert[l] = 0;
  }
  model::Transformer runner(spec, std::move(weights));
  const int64_t E = static_cast<int64_t>(prompts.size());
  std::map<int64_t, std::vector<float>> rows;
  for (int64_t l : layers) rows[l].assign(E * H, 0.0f);
  auto mean_inputs = [&](const std::vector<std::vector<int64_t>>& list) {
    std::map<int64_t, torch::Tensor> sums;
    int64_t tokens = 0;
    for (const auto& ids : list) {
      for (int64_t id : ids)
        if (id < 0 || id >= spec.vocab_size) fail("prompt token id ", id, " is outside [0, ", spec.vocab_size, ")");
      auto out = runner.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), options);
      for (const auto& r : out.routing) {
        auto s = r.logits.sum(0);  // [H]
        sums[r.layer] = sums.count(r.layer) ? sums[r.layer] + s : s;
      }
      tokens += static_cast<int64_t>(ids.size());
    }
    for (auto& [l, s] : sums) s = s / static_cast<double>(std::max<int64_t>(tokens, 1));
    return sums;
  };
  for (int64_t e = 0; e < E; ++e) {
    auto pos = mean_inputs(prompts[e].positive);
    auto neg = prompts[e].negative.empty() ? std::map<int64_t, torch::Tensor>{} : mean_inputs(prompts[e].negative);
    for (int64_t l : layers) {
      auto v = pos.at(l);
      if (neg.count(l)) v = v - neg.at(l);
      v = v / v.norm().clamp_min(1e-12);  // L2-normalised
      auto c = v.contiguous();
      std::copy(c.data_ptr<float>(), c.data_ptr<float>() + H, rows[l].begin() + e * H);
    }
  }
  return rows;
}

}  // namespace moeforge::surgery
