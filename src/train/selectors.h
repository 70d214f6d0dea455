// Parameter selectors: which canonical tensors (and which experts inside stacked expert tensors) a
// phase trains. Terms are composed left to right by union ("+", default), difference ("-") and
// intersection ("&"):
//   all | experts | experts=L:E,L:E (E or L may be '*') | experts=plan:esft[:DOMAIN|:all] (the ESFT
//   sets of an analyze plan, `train --plan`) | new_experts (moeforge_grow.json) | router |
//   shared_expert | norms | attention | mlp | embeddings | lm_head | layers=a-b | a glob over canonical
//   names ("layers.*.q", "layers.1.experts.w_in").
// e.g. ["new_experts", "router", "norms"] or "all - embeddings - lm_head".
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "model/tensor_table.h"

namespace moeforge::train {

// One canonical tensor a model has: name ("layers.3.experts.w_in"), shape, and for stacked expert
// tensors (layers.L.experts.*) the number of experts along dim 0.
struct ParamInfo {
  std::string name;
  std::string local_name;    // "experts.w_in": the runtime tensor table's entry
  model::TensorGroup group = model::TensorGroup::Attention;  // what selector terms pick it
  std::vector<int64_t> shape;
  int64_t layer = -1;        // -1 for model-level tensors
  int64_t num_experts = 0;   // > 0 only for layers.L.experts.*
};

// canonical name -> per-unit mask: num_experts entries for stacked expert tensors, else 1 entry.
// Only names with at least one selected unit are present.
using Selection = std::map<std::string, std::vector<bool>>;

// The experts grow added, per layer (from moeforge_grow.json).
using NewExperts = std::map<int64_t, std::vector<int64_t>>;
// Reads grow's record: {"layers": {"L": [{"index": e, "source": s}, ..]}} (moeforge grow) or
// {"layers": {"L": {"new": [e..], "source": [s..]}}} or {"layers": {"L": [e..]}}. `label` names it.
NewExperts parse_grow_record(const nlohmann::json& record, const std::string& label);

struct SelectorContext {
  const ModelSpec* spec = nullptr;
  std::vector<ParamInfo> params;    // every canonical tensor, in for_each_parameter order
  const NewExperts* new_experts = nullptr;  // null: the model has no grow record
  const nlohmann::json* analysis_plan = nullptr;  // plan.json of `moeforge analyze` (null: none given)
  std::string analysis_plan_label;               // its file name, for messages
};

// The ESFT expert sets of an analyze plan: "esft" -> esft.experts (the plan's chosen domain),
// "esft:all" -> esft.all, "esft:D" -> esft.domains.D. `label` names the plan in errors.
std::map<int64_t, std::vector<int64_t>> plan_esft_experts(const nlohmann::json& plan, const std::string& which,
                                                          const std::string& label);

// Evaluates the terms; `where` ("recipe.json: phases[0].select") prefixes errors (unknown term,
// out-of-range layer/expert, new_experts without a grow record, a term that picks nothing).
Selection resolve_selection(const std::vector<std::string>& terms, const SelectorContext& context, const std::string& where);

// Selected experts of one stacked tensor (empty when none or not an expert tensor).
std::vector<int64_t> selected_units(const std::vector<bool>& mask);
// Whether the mask selects every unit.
bool selects_all(const std::vector<bool>& mask);

// Parses "L:E,L:E" (force_route / experts=): layer -> experts.
std::map<int64_t, std::vector<int64_t>> parse_layer_experts(const std::string& text, const ModelSpec& spec, const std::string& where);

}  // namespace moeforge::train
