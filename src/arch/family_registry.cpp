// The family registry, name-table lookup, and config.json -> ModelSpec entry points.
#include <nlohmann/json.hpp>

#include "arch/config_common.h"
#include "arch/families.h"
#include "arch/moeforge_extensions.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"

namespace moeforge {

const std::vector<const FamilyAdapter*>& all_adapters() {
  static const std::vector<const FamilyAdapter*> list = {
      &families::llama(),   &families::mistral(),   &families::qwen2(),     &families::qwen3(),
      &families::gpt_neo(), &families::mixtral(),   &families::qwen2_moe(), &families::qwen3_moe(),
      &families::olmoe(),   &families::gpt_oss(),   &families::deepseek_v3(), &families::gpt_neo_moe(),
  };
  return list;
}

namespace {

bool is_fused(ExpertLayout layout) { return layout != ExpertLayout::PerExpert; }

}  // namespace

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const FamilyAdapter* family : all_adapters()) out.push_back(family->model_type);
  return out;
}

const FamilyAdapter* find_adapter(const std::string& model_type) {
  for (const FamilyAdapter* family : all_adapters())
    if (model_type == family->model_type) return family;
  return nullptr;
}

const FamilyAdapter& adapter_for(const std::string& model_type, const std::string& label) {
  if (const FamilyAdapter* family = find_adapter(model_type)) return *family;
  fail("unknown model_type '", model_type, "' in ", label, "; supported: ", join(supported_model_types(), ", "));
}

NameTable names_for(const FamilyAdapter& adapter, ExpertLayout layout) {
  NameTable table = adapter.names;
  if (is_fused(layout))
    for (const auto& [role, name] : adapter.fused_names) table[role] = name;
  return table;
}

std::string tensor_name(const ModelSpec& spec, TensorRole role, int64_t layer, int64_t expert) {
  const FamilyAdapter& adapter = adapter_for(spec.model_type, spec.source);
  const NameTable& base = adapter.names;
  // Overrides are few: look there first, then the base table, without copying the table.
  if (is_fused(spec.moe.layout)) {
    auto it = adapter.fused_names.find(role);
    if (it != adapter.fused_names.end()) return format_tensor_name(it->second, layer, expert);
  }
  auto it = base.find(role);
  if (it == base.end())
    if (const char* extension = extension_tensor_template(role)) return format_tensor_name(extension, layer, expert);
  if (it == base.end()) fail(spec.model_type, " has no tensor role '", role_name(role), "'");
  return format_tensor_name(it->second, layer, expert);
}

ModelSpec spec_from_config(const nlohmann::json& config, const nlohmann::json* generation_config,
                           const std::string& label) {
  if (!config.is_object()) fail(label, ": expected a JSON object");
  auto type = config.find("model_type");
  if (type == config.end() || !type->is_string()) fail(label, ": missing required key 'model_type'");
  const FamilyAdapter& adapter = adapter_for(type->get<std::string>(), label);
  ModelSpec spec;
  spec.model_type = adapter.model_type;
  spec.source = label;
  ConfigReader reader(config, label, spec.model_type);
  adapter.parse(reader, spec);
  apply_moeforge_extensions(reader, spec);  // moeforge_* keys (shared expert, selection bias)
  if (generation_config && generation_config->is_object())
    apply_generation_config(*generation_config, label + " (generation_config.json)", spec);
  spec.validate();
  return spec;
}

void detect_expert_layout(ModelSpec& spec, const CheckpointStore& store) {
  if (!spec.has_moe()) return;
  int64_t layer = -1;
  for (int64_t l = 0; l < spec.num_layers; ++l)
    if (spec.is_moe[l]) { layer = l; break; }
  if (layer < 0) return;
  const FamilyAdapter& adapter = adapter_for(spec.model_type, spec.source);
  auto present = [&](ExpertLayout layout, TensorRole role, int64_t expert) {
    NameTable table = names_for(adapter, layout);
    auto it = table.find(role);
    return it != table.end() && store.contains(format_tensor_name(it->second, layer, expert));
  };
  ExpertLayout before = spec.moe.layout;
  if (present(ExpertLayout::PerExpert, TensorRole::ExpertUp, 0)) spec.moe.layout = ExpertLayout::PerExpert;
  else if (present(ExpertLayout::Mxfp4, TensorRole::ExpertsGateUpBlocks, -1)) spec.moe.layout = ExpertLayout::Mxfp4;
  else if (present(adapter.fused_layout, TensorRole::ExpertsGateUp, -1)) spec.moe.layout = adapter.fused_layout;
  if (spec.moe.layout != before) spec.validate();  // MXFP4 adds divisibility constraints
}

ModelSpec load_model_spec(const CheckpointStore& store) {
  std::string label = (store.directory() / "config.json").string();
  if (!store.has_file("config.json")) fail("missing config.json in ", store.directory().string());
  nlohmann::json config = store.read_json("config.json");
  nlohmann::json generation;
  bool has_generation = store.has_file("generation_config.json");
  if (has_generation) generation = store.read_json("generation_config.json");
  ModelSpec spec = spec_from_config(config, has_generation ? &generation : nullptr, label);
  detect_expert_layout(spec, store);
  return spec;
}

}  // namespace moeforge
