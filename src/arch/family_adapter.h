// Family adapters: one per Hugging Face model_type. An adapter turns config.json into a ModelSpec
// and names every tensor role on disk (NameTable). adapter_for() is the one registry.
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

struct FamilyAdapter {
  using ParseFn = void (*)(const ConfigReader& config, ModelSpec& spec);
  FamilyAdapter(const char* type, const char* what, ParseFn parse_fn, NameTable table,
                ExpertLayout fused = ExpertLayout::FusedConcat, NameTable fused_table = {})
      : model_type(type), description(what), parse(parse_fn), names(std::move(table)),
        fused_layout(fused), fused_names(std::move(fused_table)) {}

  const char* model_type = "";   // config.json "model_type"
  const char* description = "";  // "Mixtral (sparse MoE, per-expert w1/w3/w2)"
  // Fills `spec` (model_type and source already set) from config.json. Throws naming file, key and
  // family. Does not look at tensors: the expert layout is the family's default until
  // detect_expert_layout() has seen the store.
  ParseFn parse = nullptr;
  // role -> name template ("{l}" layer, "{e}" expert). Roles a family never has are absent.
  NameTable names;
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
