// mergekit-moe YAML -> MergeOptions (see mergekit_config.h).
#include "surgery/mergekit_config.h"

#include <iostream>
#include <set>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/hf_cache.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"
#include "io/yaml.h"

namespace moeforge::surgery {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

struct Reader {
  fs::path file;
  std::string label;

  [[noreturn]] void bad(const std::string& field, const std::string& what) const { fail(label, ": ", field, ": ", what); }

  void warn_unknown(const Json& object, const std::set<std::string>& known, const std::string& where) const {
    for (const auto& [key, value] : object.items())
      if (!known.count(key))
        std::cerr << "moeforge: warning: " << label << ": " << where << key << " is not a mergekit-moe field; ignored (as mergekit does)\n";
  }

  // A model reference: a local directory, as mergekit resolves it (the working directory), else
  // beside the YAML file.
  fs::path model(const Json& v, const std::string& field) const {
    if (!v.is_string() || v.get<std::string>().empty()) bad(field, "must be a model directory");
    const std::string ref = v.get<std::string>();
    if (ref.find('+') != std::string::npos) bad(field, "'" + ref + "': model+LoRA references are not supported; merge the LoRA first");
    const fs::path as_given(ref), beside = file.parent_path() / ref;
    for (const fs::path& p : {as_given, beside})
      if (fs::exists(p / "config.json")) return p;
    if (auto cached = find_in_hub_cache(ref, HubKind::Model)) return *cached;
    if (ref.find('@') != std::string::npos) bad(field, "'" + ref + "': @revision references are not supported; give the snapshot directory");
    bad(field, "'" + ref + "' is not a model directory (no config.json in " + fs::absolute(as_given).string() +
                   (beside == as_given ? "" : " or " + fs::absolute(beside).lexically_normal().string()) +
                   ")" + hub_cache_hint(ref));
  }

  std::vector<std::string> prompts(const Json& expert, const std::string& key, const std::string& where) const {
    std::vector<std::string> out;
    if (!expert.contains(key) || expert[key].is_null()) return out;
    const Json& list = expert[key];
    if (!list.is_array()) bad(where + key, "must be a list of strings");
    for (const auto& p : list) {
      if (!p.is_string()) bad(where + key, "must be a list of strings");
      out.push_back(p.get<std::string>());
    }
    return out;
  }

  std::optional<double> number(const Json& object, const std::string& key, const std::string& where) const {
    if (!object.contains(key) || object[key].is_null()) return std::nullopt;
    if (!object[key].is_number()) bad(where + key, "must be a number");
    return object[key].get<double>();
  }
};

RouterInit gate_mode(const Reader& r, const Json& root) {
  if (!root.contains("gate_mode") || root["gate_mode"].is_null()) return RouterInit::Hidden;
  if (!root["gate_mode"].is_string()) r.bad("gate_mode", "must be a string");
  const std::string mode = root["gate_mode"].get<std::string>();
  if (mode == "hidden" || mode == "hidden_last") return RouterInit::Hidden;
  if (mode == "hidden_avg") return RouterInit::HiddenAvg;
  if (mode == "cheap_embed") return RouterInit::CheapEmbed;
  if (mode == "random") return RouterInit::Random;
  if (mode == "uniform_random") return RouterInit::UniformRandom;
  r.bad("gate_mode", "'" + mode + "' is not one of hidden, hidden_avg, cheap_embed, random, uniform_random");
}

// mergekit's dtype names -> ours.
std::string dtype_key(const std::string& name) {
  if (name == "bfloat16" || name == "bf16") return "BF16";
  if (name == "float16" || name == "fp16" || name == "half") return "F16";
  if (name == "float32" || name == "fp32" || name == "float") return "F32";
  return "";
}

}  // namespace

MergeOptions read_mergekit_config(const fs::path& yaml_file) {
  Reader r{yaml_file, yaml_file.string()};
  const Json root = read_yaml_file(yaml_file);
  if (!root.is_object()) fail(r.label, ": expected a mergekit-moe config (a mapping with base_model and experts)");
  r.warn_unknown(root, {"base_model", "experts", "gate_mode", "dtype", "experts_per_token", "shared_experts", "architecture"}, "");
  if (!root.contains("base_model")) r.bad("base_model", "missing");
  MergeOptions o;
  o.base = r.model(root["base_model"], "base_model");
  o.non_ffn = NonFfnSource::Base;  // mergekit copies every non-MLP tensor from base_model
  o.router = gate_mode(r, root);
  if (!root.contains("experts") || !root["experts"].is_array() || root["experts"].empty())
    r.bad("experts", "must be a non-empty list of {source_model, positive_prompts, ...}");
  const bool prompted = router_needs_prompts(*o.router);
  bool any_noise = false, any_residual = false;
  Json prompts = Json::array();  // [{"positive": [...], "negative": [...]}, ...] for parse_prompts
  for (size_t e = 0; e < root["experts"].size(); ++e) {
    const Json& x = root["experts"][e];
    const std::string where = cat("experts[", e, "].");
    if (!x.is_object()) r.bad(cat("experts[", e, "]"), "must be a mapping with source_model");
    r.warn_unknown(x, {"source_model", "positive_prompts", "negative_prompts", "noise_scale", "residual_scale"}, where);
    if (!x.contains("source_model")) r.bad(where + "source_model", "missing");
    o.experts.emplace_back(cat(e, ":", x["source_model"].is_string() ? fs::path(x["source_model"].get<std::string>()).filename().string() : ""),
                           r.model(x["source_model"], where + "source_model"));
    auto positive = r.prompts(x, "positive_prompts", where), negative = r.prompts(x, "negative_prompts", where);
    if (prompted && positive.empty()) r.bad(where + "positive_prompts", "gate_mode " + std::string(to_string(*o.router)) + " needs at least one prompt");
    prompts.push_back({{"positive", positive}, {"negative", negative}});
    const auto noise = r.number(x, "noise_scale", where), residual = r.number(x, "residual_scale", where);
    o.noise_scale.push_back(noise.value_or(0.0));
    o.residual_scale.push_back(residual.value_or(1.0));
    any_noise = any_noise || noise;
    any_residual = any_residual || residual;
  }
  if (!any_noise) o.noise_scale.clear();
  if (!any_residual) o.residual_scale.clear();
  o.top_k = 2;
  if (root.contains("experts_per_token") && !root["experts_per_token"].is_null()) {
    if (!root["experts_per_token"].is_number_integer()) r.bad("experts_per_token", "must be an integer");
    o.top_k = root["experts_per_token"].get<int64_t>();
  }
  if (o.top_k < 1 || o.top_k > static_cast<int64_t>(o.experts.size()))
    r.bad("experts_per_token", cat(o.top_k, " must be in [1, ", o.experts.size(), "] (the number of experts)"));
  if (root.contains("shared_experts") && !root["shared_experts"].is_null() && !root["shared_experts"].empty())
    r.bad("shared_experts", "mergekit's prompted shared expert (its qwen output) is not supported; moeforge merge --to qwen2_moe "
                            "--shared-expert keeps the base FFN as the shared expert");
  // The output family, as mergekit picks it: Mixtral for Llama/Mistral models unless `architecture` says otherwise.
  auto base_store = CheckpointStore::open(o.base);
  const std::string base_type = base_store->read_json("config.json").value("model_type", std::string());
  std::string arch = root.contains("architecture") && root["architecture"].is_string() ? root["architecture"].get<std::string>() : "";
  for (auto& c : arch) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (arch.empty() || arch == "mixtral") {
    if (base_type != "llama" && base_type != "mistral")
      r.bad(arch.empty() ? "base_model" : "architecture",
            "mergekit's Mixtral output needs Llama or Mistral models; " + o.base.string() + " is " + base_type +
                (base_type == "qwen3" ? " (set architecture: qwen3)" : ""));
    o.to = "mixtral";
  } else if (arch == "qwen3") {
    o.to = "qwen3_moe";
  } else if (arch == "qwen" || arch == "deepseek") {
    r.bad("architecture", "'" + arch + "' (mergekit's " + (arch == "qwen" ? "Qwen2-MoE with a prompted shared expert" : "DeepSeek") +
                              " output) is not supported; use mixtral or qwen3");
  } else {
    r.bad("architecture", "'" + arch + "' is not one of mixtral, qwen3");
  }
  if (root.contains("dtype") && !root["dtype"].is_null()) {
    const std::string name = root["dtype"].is_string() ? root["dtype"].get<std::string>() : "";
    const std::string want = dtype_key(name);
    if (want.empty()) r.bad("dtype", "'" + name + "' is not bfloat16, float16 or float32");
    const ModelSpec spec = load_model_spec(*base_store);
    const std::string have(dtype_name(base_store->tensor(tensor_name(spec, TensorRole::Embed)).info->dtype));
    if (have != want)
      r.bad("dtype", name + " differs from the base model's " + have + "; moeforge merge keeps the base's dtype (convert the models first)");
  }
  if (prompted) o.expert_prompts = parse_prompts(prompts, r.label + ": experts", o.base, {}, static_cast<int64_t>(o.experts.size()));
  return o;
}

}  // namespace moeforge::surgery
