#include "cli/torch/runtime_flags.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/strings.h"
#include "model/device.h"
#include "model/moe_experts.h"

namespace moeforge::cli {

void RuntimeFlags::add_to(CLI::App* app) {
  app->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  app->add_option("--dtype", dtype, "fp32, bf16 or fp16")->capture_default_str();
  app->add_option("--expert-gemm", expert_gemm, "MoE expert GEMMs: auto (grouped on CUDA, per-expert loop on CPU), loop, grouped")
      ->check(CLI::IsMember({"auto", "loop", "grouped"}))
      ->capture_default_str();
  app->add_option("--max-memory", max_memory_gb,
                  "memory budget in GB (default: MemAvailable); a model whose predicted peak exceeds it is refused before loading");
  app->add_flag("--verbose", verbose, "print the memory plan (predicted peak memory) before loading");
  app->add_flag("--dequantize", dequantize,
                "decode MXFP4 experts to the run dtype at load (the default keeps them packed, 4.25 bits per weight, "
                "decoded one expert at a time)");
}

model::LoadOptions RuntimeFlags::load_options() const {
  model::LoadOptions options;
  if (dtype == "fp32" || dtype == "float32") options.dtype = torch::kFloat32;
  else if (dtype == "bf16" || dtype == "bfloat16") options.dtype = torch::kBFloat16;
  else if (dtype == "fp16" || dtype == "float16") options.dtype = torch::kFloat16;
  else fail("--dtype '", dtype, "' is not one of fp32, bf16, fp16");
  options.device = model::parse_device(device);
  if (max_memory_gb >= 0) options.max_memory_bytes = static_cast<int64_t>(max_memory_gb * 1e9);
  options.verbose = verbose;
  options.pack_mxfp4 = !dequantize;
  if (expert_gemm == "grouped" && !model::grouped_gemm_available())
    fail("--expert-gemm grouped: this libtorch has no grouped GEMM (at::_grouped_mm needs torch >= 2.8)");
  model::set_expert_gemm(expert_gemm == "loop"      ? model::ExpertGemm::Loop
                         : expert_gemm == "grouped" ? model::ExpertGemm::Grouped
                                                    : model::ExpertGemm::Auto);
  return options;
}

std::map<int64_t, int64_t> parse_force_expert(const std::string& text, const ModelSpec* spec) {
  std::map<int64_t, int64_t> pairs;
  for (const auto& item : split(text, ',')) {
    auto parts = split(item, ':');
    bool every_layer = false;
    int64_t layer = 0, expert = 0;
    try {
      if (parts.size() != 2) throw std::invalid_argument(item);
      size_t used = 0;
      every_layer = parts[0] == "*";
      if (!every_layer) {
        layer = std::stoll(parts[0], &used);
        if (used != parts[0].size()) throw std::invalid_argument(item);
      }
      expert = std::stoll(parts[1], &used);
      if (used != parts[1].size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail("--force-expert '", item, "' is not LAYER:EXPERT (e.g. 1:3, or *:3 for every MoE layer)");
    }
    if (!spec) continue;
    if (expert < 0 || expert >= spec->moe.num_experts)
      fail("--force-expert ", item, ": the model has ", spec->moe.num_experts, " experts (0..", spec->moe.num_experts - 1,
           ")");
    if (every_layer) {
      for (int64_t l = 0; l < spec->num_layers; ++l)
        if (spec->is_moe[l]) pairs[l] = expert;
      continue;
    }
    const int64_t resolved = layer < 0 ? spec->num_layers + layer : layer;
    if (resolved < 0 || resolved >= spec->num_layers || !spec->is_moe[resolved])
      fail("--force-expert ", item, ": layer ", layer, " is not an MoE layer of this model (", spec->num_layers,
           " layers)");
    pairs[resolved] = expert;
  }
  return pairs;
}

}  // namespace moeforge::cli
