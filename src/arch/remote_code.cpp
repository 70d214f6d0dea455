// Remote-code outputs for transformers (see remote_code.h).
#include "arch/remote_code.h"

#include "common/error.h"
#include "common/strings.h"
#include "arch/remote_code_files.h"

namespace moeforge {
namespace {

constexpr const char* kConfigFile = "configuration_moeforge.py";
constexpr const char* kModelingFile = "modeling_moeforge.py";

// model_type -> the class-name stem in modeling_moeforge.py.
const char* class_stem(const std::string& model_type) {
  if (model_type == "mixtral") return "Mixtral";
  if (model_type == "qwen2_moe") return "Qwen2Moe";
  if (model_type == "qwen3_moe") return "Qwen3Moe";
  if (model_type == "olmoe") return "Olmoe";
  if (model_type == "gpt_oss") return "GptOss";
  if (model_type == "gpt_neo_moe") return "GptNeoMoe";
  return nullptr;
}

bool is_moeforge_auto_map(const nlohmann::json& config) {
  if (!config.contains("auto_map") || !config["auto_map"].is_object()) return false;
  const auto& m = config["auto_map"];
  return m.contains("AutoModelForCausalLM") && m["AutoModelForCausalLM"].is_string() &&
         starts_with(m["AutoModelForCausalLM"].get<std::string>(), "modeling_moeforge.");
}

}  // namespace

bool is_remote_code_file(const std::string& filename) { return filename == kConfigFile || filename == kModelingFile; }

std::vector<std::string> features_needing_remote_code(const nlohmann::json& config) {
  std::vector<std::string> out;
  const bool gpt_neo_moe = config.value("model_type", std::string()) == "gpt_neo_moe";
  if (gpt_neo_moe) out.push_back("the GPT-Neo MoE architecture itself (moeforge's family; no transformers class holds it)");
  const std::string layers = gpt_neo_moe ? "transformer.h.*" : "model.layers.*";
  if (config.contains("moeforge_shared_expert_intermediate_size")) {
    const std::string gate = config.value("moeforge_shared_expert_gate", std::string("fixed"));
    std::string tensors = layers + ".mlp.shared_expert.*";
    if (gate == "sigmoid") tensors += ", mlp.shared_expert_gate.weight";
    if (gate == "learned") tensors += ", mlp.shared_expert_scale";
    out.push_back(cat("the shared expert (", gate, " gate; tensors ", tensors, ")"));
  }
  if (config.value("moeforge_selection_bias", false))
    out.push_back(cat("the selection-only router bias (tensors ", layers, ".mlp.moeforge_selection_bias)"));
  return out;
}

std::map<std::string, std::string> apply_remote_code(nlohmann::json& config, bool enabled) {
  const bool ours = is_moeforge_auto_map(config);
  if (ours) config.erase("auto_map");  // regenerated below when still needed
  if (!enabled || features_needing_remote_code(config).empty()) return {};
  const std::string model_type = config.value("model_type", std::string());
  const char* stem = class_stem(model_type);
  if (!stem) fail("config.json: moeforge has no remote code for model_type '", model_type, "' (needed for ",
                  join(features_needing_remote_code(config), ", "), ")");
  if (config.contains("auto_map"))
    fail("config.json: already has another project's auto_map; moeforge cannot add its remote code to it");
  config["auto_map"] = {{"AutoConfig", cat("configuration_moeforge.Moeforge", stem, "Config")},
                        {"AutoModelForCausalLM", cat("modeling_moeforge.Moeforge", stem, "ForCausalLM")}};
  return {{kConfigFile, remote_code_text::configuration_moeforge}, {kModelingFile, remote_code_text::modeling_moeforge}};
}

std::string note_ignored_by_transformers(const nlohmann::json& config) {
  const auto features = features_needing_remote_code(config);
  if (features.empty()) return "";
  if (config.value("model_type", std::string()) == "gpt_neo_moe")
    return "moeforge: note: --no-remote-code: transformers cannot load a gpt_neo_moe model without moeforge's remote "
           "code; only moeforge runs this output\n";
  return cat("moeforge: note: --no-remote-code: transformers will load a plain ", config.value("model_type", std::string("?")),
             " and ignore ", join(features, " and "), "; its logits will differ from moeforge's\n");
}

bool uses_remote_code(const nlohmann::json& config) { return is_moeforge_auto_map(config); }

std::string loading_code(const nlohmann::json& config, const std::string& path) {
  const bool remote = uses_remote_code(config);
  return cat("from transformers import AutoModelForCausalLM\n\nmodel = AutoModelForCausalLM.from_pretrained(", path,
             remote ? ", trust_remote_code=True" : "", ")\n");
}

}  // namespace moeforge
