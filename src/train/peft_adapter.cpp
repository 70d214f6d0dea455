// PEFT LoRA adapters in transformers' in-memory module names (see peft_adapter.h).
#include "train/peft_adapter.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "arch/family_adapter.h"
#include "common/strings.h"
#include "io/atomic_file.h"
#include "io/checkpoint_writer.h"
#include "model/tensor_table.h"
#include "train/export.h"

namespace moeforge::train {

namespace fs = std::filesystem;

namespace {

using Blobs = std::vector<std::pair<TensorDecl, std::string>>;

void add_blob(Blobs& blobs, const std::string& name, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  blobs.emplace_back(TensorDecl{name, DType::F32, c.sizes().vec()},
                     std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
}

// The name transformers (v5) gives `role` in memory: routers and expert stacks live under
// mlp.gate / mlp.experts whatever the checkpoint's own layout (Mixtral's per-expert
// block_sparse_moe.experts.E.w1 is fused into mlp.experts.gate_up_proj on load). Empty when the
// family has no such in-memory parameter.
std::string in_memory_name(const ModelSpec& spec, TensorRole role, int64_t layer) {
  const FamilyAdapter& family = adapter_for(spec.model_type, spec.source);
  const NameTable table = names_for(family, family.fused_layout);
  if (!table.count(role)) return "";
  ModelSpec fused = spec;
  fused.moe.layout = family.fused_layout;
  return tensor_name(fused, role, layer);
}

// An expert stack's factors in PEFT's ParamWrapper layout. PEFT keeps one lora_A [E*r, in] (row
// e*r + k is expert e's k-th row) and one lora_B [out, r*E] (column k*E + e), and forms expert e's
// delta as B_e A_e in the parameter's [out, in] order, transposed where the family stores
// [E, in, out] (GPT-OSS). Unselected experts get zero factors. `out_rows` maps each of the HF
// parameter's output rows to a canonical row (GPT-OSS interleaves gate and up).
std::pair<torch::Tensor, torch::Tensor> stacked_factors(const TrainableTensor& t, int64_t num_experts,
                                                        const torch::Tensor& out_rows) {
  auto a = t.lora_a.detach().to(torch::kCPU, torch::kFloat32);  // [n, r, in]
  auto b = t.lora_b.detach().to(torch::kCPU, torch::kFloat32);  // [n, out, r]
  auto index = torch::tensor(t.experts, torch::kInt64);  // expert ids (t.index holds rows of the model's stack)
  const int64_t r = a.size(1), in = a.size(2), out = b.size(1);
  auto full_a = torch::zeros({num_experts, r, in}).index_copy_(0, index, a);
  auto full_b = torch::zeros({num_experts, out, r}).index_copy_(0, index, b);
  if (out_rows.defined()) full_b = full_b.index_select(1, out_rows);
  return {full_a.reshape({num_experts * r, in}), full_b.permute({1, 2, 0}).reshape({out, r * num_experts})};
}

// GPT-OSS's gate_up_proj output column 2j is gate row j, column 2j+1 up row j.
torch::Tensor interleaved_rows(int64_t rows) {
  const int64_t half = rows / 2;
  auto j = torch::arange(half, torch::kInt64);
  return torch::stack({j, j + half}, 1).reshape({rows});
}

}  // namespace

AdapterResult write_peft_adapter(const ModelSpec& spec, const TrainableSet& set, const LoraOptions& lora,
                                 const std::string& base_model, const fs::path& dir) {
  AdapterResult result;
  Blobs blobs;
  const FamilyAdapter& family = adapter_for(spec.model_type, spec.source);
  // Expert stacks of one HF module, by parameter name; PEFT wraps the module once per targeted
  // parameter in the module's own parameter order, so with both targeted the first (gate_up_proj)
  // ends up innermost and its factors are saved under "base_layer.".
  struct ExpertsModule {
    const TrainableTensor* gate_up = nullptr;
    const TrainableTensor* down = nullptr;
  };
  std::map<std::string, ExpertsModule> expert_modules;
  for (const auto& t : set.tensors()) {
    if (!t.lora) {
      result.full.push_back(t.name);
      continue;
    }
    const model::CanonicalName name = model::parse_canonical_name(t.name);
    const model::RuntimeTensor* entry = model::find_runtime_tensor(name.local);
    const bool stacked = entry && entry->source == model::TensorSource::Experts;
    const bool router = entry && entry->group == model::TensorGroup::Router;
    if (stacked || router) {
      const std::string param = in_memory_name(spec, entry->role, name.layer);
      if (param.empty()) {
        result.skipped.push_back(t.name);
        continue;
      }
      result.parameters.push_back(param);
      if (router) {  // a 2-D parameter: plain [r, in] / [out, r] factors on the module holding it
        const std::string module = param.substr(0, param.rfind('.'));
        add_blob(blobs, "base_model.model." + module + ".lora_A.weight", t.lora_a);
        add_blob(blobs, "base_model.model." + module + ".lora_B.weight", t.lora_b);
        continue;
      }
      const std::string module = param.substr(0, param.rfind('.'));
      auto& m = expert_modules[module];
      (entry->role == TensorRole::ExpertsGateUp ? m.gate_up : m.down) = &t;
      continue;
    }
    for (const auto& piece : hf_pieces(spec, t.name, t.base->size(0))) {
      std::string module = piece.name;
      if (ends_with(module, ".weight")) module = module.substr(0, module.size() - 7);
      auto b = piece.rows < 0 ? t.lora_b : t.lora_b.narrow(0, piece.row_begin, piece.rows);  // [out, r]
      add_blob(blobs, "base_model.model." + module + ".lora_A.weight", t.lora_a);
      add_blob(blobs, "base_model.model." + module + ".lora_B.weight", b);
      result.modules.push_back(module);
    }
  }
  const bool interleaved = family.fused_layout == ExpertLayout::FusedInterleaved;
  for (const auto& [module, m] : expert_modules) {
    for (const TrainableTensor* t : {m.gate_up, m.down}) {
      if (!t) continue;
      const bool inner = t == m.gate_up && m.down;
      torch::Tensor rows;
      if (t == m.gate_up && interleaved) rows = interleaved_rows(t->base->size(1));
      auto [a, b] = stacked_factors(*t, static_cast<int64_t>(t->mask.size()), rows);  // the stack's experts, packed ones too
      const std::string prefix = "base_model.model." + module + (inner ? ".base_layer" : "");
      add_blob(blobs, prefix + ".lora_A.weight", a);
      add_blob(blobs, prefix + ".lora_B.weight", b);
    }
  }
  if (result.modules.empty() && result.parameters.empty()) return result;
  std::sort(blobs.begin(), blobs.end(), [](const auto& a, const auto& b) { return a.first.name < b.first.name; });
  nlohmann::json config = {{"peft_type", "LORA"},
                           {"task_type", "CAUSAL_LM"},
                           {"base_model_name_or_path", base_model},
                           {"r", lora.rank},
                           {"lora_alpha", lora.alpha},
                           {"lora_dropout", lora.dropout},
                           {"bias", "none"},
                           {"fan_in_fan_out", false},
                           {"use_rslora", false},
                           {"init_lora_weights", true},
                           {"inference_mode", true},
                           {"modules_to_save", nullptr},
                           {"target_modules", result.modules}};
  if (!result.parameters.empty()) config["target_parameters"] = result.parameters;
  fs::create_directories(dir);
  write_file_atomic(dir / "adapter_model.safetensors", serialize_safetensors(blobs, {{"format", "pt"}}));
  write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
  return result;
}

}  // namespace moeforge::train
