// PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) for a LoRA phase, in the
// names of the modules transformers builds in memory, so that PeftModel.from_pretrained(base, run)
// gives the logits of the merged checkpoint:
//   - dense linears (attention, dense MLP, shared experts, lm_head): "target_modules", lora_A [r, in]
//     and lora_B [out, r] per Hugging Face module (a fused gate/up canonical tensor becomes two);
//   - routers and stacked experts: "target_parameters" (PEFT >= 0.17's ParamWrapper on a 2-D
//     router weight or a 3-D [E, ...] expert parameter such as mlp.experts.gate_up_proj).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "train/recipe.h"
#include "train/trainable.h"

namespace moeforge::train {

struct AdapterResult {
  std::vector<std::string> modules;     // HF modules with adapters (target_modules)
  std::vector<std::string> parameters;  // HF parameters with adapters (target_parameters)
  std::vector<std::string> skipped;     // LoRA tensors PEFT cannot load: merged into trainable.safetensors only
  std::vector<std::string> full;        // tensors the phase trained fully (biases, norms): not in the adapter
};

// Writes adapter_config.json + adapter_model.safetensors into `dir` (nothing when no LoRA tensor
// is expressible).
AdapterResult write_peft_adapter(const ModelSpec& spec, const TrainableSet& set, const LoraOptions& lora,
                                 const std::string& base_model, const std::filesystem::path& dir);

}  // namespace moeforge::train
