// Family adapters: one per Hugging Face model_type, both directions. An adapter turns config.json
// into a ModelSpec and names every tensor role on disk (NameTable); its FamilyWriter says how
// surgery and `init` write the family's config.json (mergekit's per-architecture "can I write
// this, and how"). adapter_for() is the one registry: nothing outside arch/family_*.cpp asks
// `model_type == "..."`.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "arch/config_reader.h"
#include "arch/model_spec.h"
#include "arch/tensor_role.h"

namespace moeforge {

class CheckpointStore;

// What a dense -> MoE surgery (upcycle, merge) asks of its target family.
struct MoeConfigRequest {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t expert_width = 0;         // moe_intermediate_size
  bool renormalize = true;          // norm_topk_prob
  std::vector<int64_t> moe_layers;  // sorted; the other layers keep their dense MLP
  int64_t shared_expert_width = 0;  // native shared expert (0 = none)
};

// The write side of a family.
struct FamilyWriter {
  const char* architecture = "";            // config.json "architectures": "MixtralForCausalLM"
  const char* experts_count_key = nullptr;  // "num_local_experts" / "num_experts"; null for dense families
  // A native shared expert: the config key of its width and its gate. Null when the family has
  // none (a shared expert added to it is then a moeforge extension, moeforge_* keys).
  const char* shared_expert_width_key = nullptr;
  SharedGateKind native_shared_gate = SharedGateKind::None;
  // As an upcycle/merge target: writes the MoE keys into the dense source's config (the common
  // keys, model_type and architectures are already set). Null: the family is no target.
  void (*write_moe_keys)(nlohmann::json& config, const ModelSpec& dense, const MoeConfigRequest& request) = nullptr;
  bool keeps_dense_layers = false;    // a target that can leave some layers dense (mlp_only_layers)
  bool always_renormalizes = false;   // a target that cannot switch norm_topk_prob off (Mixtral)
  double default_aux_loss_coef = 0.001;
  // The one family a dense model of this family can be upcycled or merged into (null: any target
  // whose features match; GPT-Neo: only gpt_neo_moe).
  const char* upcycle_only_to = nullptr;
  // A tiny config for `moeforge init` with the family's features on (GQA, several experts, q/k
  // norms, sliding windows where native); model_type and architectures are added by the caller.
  nlohmann::json (*init_config)() = nullptr;
};

struct FamilyAdapter {
  using ParseFn = void (*)(const ConfigReader& config, ModelSpec& spec);
  FamilyAdapter(const char* type, const char* what, ParseFn parse_fn, NameTable table, FamilyWriter write,
                ExpertLayout fused = ExpertLayout::FusedConcat, NameTable fused_table = {})
      : model_type(type), description(what), parse(parse_fn), names(std::move(table)), writer(write),
        fused_layout(fused), fused_names(std::move(fused_table)) {}

  const char* model_type = "";   // config.json "model_type"
  const char* description = "";  // "Mixtral (sparse MoE, per-expert w1/w3/w2)"
  // Fills `spec` (model_type and source already set) from config.json. Throws naming file, key and
  // family. Does not look at tensors: the expert layout is the family's default until
  // detect_expert_layout() has seen the store.
  ParseFn parse = nullptr;
  // role -> name template ("{l}" layer, "{e}" expert). Roles a family never has are absent.
  NameTable names;
  FamilyWriter writer;
  // What the ExpertsGateUp/ExpertsDown names mean when present: FusedConcat (transformers v5
  // in-memory style) for Mixtral/Qwen/OLMoE, FusedInterleaved for GPT-OSS.
  ExpertLayout fused_layout = ExpertLayout::FusedConcat;
  // Entries that replace `names` when the layout is fused (Mixtral's v5 state dict renames
  // block_sparse_moe -> mlp). Empty for most families.
  NameTable fused_names;
};

// The adapter's table with the layout's overrides applied: the one to format names from.
NameTable names_for(const FamilyAdapter& adapter, ExpertLayout layout);
// Shorthand: the on-disk name of `role` at (layer, expert) for this spec. Throws when the family
// has no such role.
std::string tensor_name(const ModelSpec& spec, TensorRole role, int64_t layer = -1, int64_t expert = -1);

// Throws "unknown model_type 'x' in <label>; supported: llama, mistral, ..." for anything else.
const FamilyAdapter& adapter_for(const std::string& model_type, const std::string& label = "config.json");
std::vector<std::string> supported_model_types();
// The adapter of `model_type`, or null (for callers that word their own error).
const FamilyAdapter* find_adapter(const std::string& model_type);
// Every registered family, in registry order.
const std::vector<const FamilyAdapter*>& all_adapters();

// Parses a config.json (and optionally generation_config.json, whose bos/eos/pad ids win) into a
// validated spec. `label` names the config in messages.
ModelSpec spec_from_config(const nlohmann::json& config, const nlohmann::json* generation_config,
                           const std::string& label);

// Reads config.json (+ generation_config.json when present) from the store's directory, then
// detects the expert layout from the tensors present (per-expert, fused, MXFP4).
ModelSpec load_model_spec(const CheckpointStore& store);

// Picks the layout whose tensors exist for the first MoE layer; keeps spec.moe.layout when none
// match (validate_store() then reports the missing tensors).
void detect_expert_layout(ModelSpec& spec, const CheckpointStore& store);

}  // namespace moeforge
