// Registers `info`'s per-mode memory plan (cli/info_memory.h): the plans forward-only commands and
// train make before loading, for each dtype and MXFP4 mode a user can pick.
#include "cli/info_memory.h"

#include "arch/family_adapter.h"
#include "io/checkpoint_store.h"
#include "model/memory_plan.h"

namespace moeforge::cli {
namespace {

std::vector<ModeMemory> memory_modes(const CheckpointStore& store) {
  const ModelSpec spec = load_model_spec(store);
  const bool mxfp4 = spec.moe.layout == ExpertLayout::Mxfp4;
  struct Mode {
    const char* name;
    DType dtype;
    bool packed;
    const char* commands;
  };
  std::vector<Mode> modes = {{"fp32", DType::F32, true, "stats, eval, generate (default --dtype); train precision fp32"},
                             {"bf16", DType::BF16, true, "--dtype bf16; train precision bf16"}};
  if (mxfp4) {
    modes[0].name = "fp32, MXFP4 packed";
    modes[1].name = "bf16, MXFP4 packed";
    modes.push_back({"bf16 --dequantize", DType::BF16, false, "MXFP4 experts decoded at load"});
  }
  std::vector<ModeMemory> out;
  for (const Mode& m : modes) {
    const model::MemoryPlan plan = model::plan_model_memory(spec, store, m.dtype, /*cpu=*/true, /*map_frozen=*/true, m.packed);
    out.push_back({m.name, m.commands, plan.weights, plan.mapped, plan.host_peak(), plan.streamed_peak()});
  }
  return out;
}

const bool registered = (info_memory_provider() = &memory_modes, true);

}  // namespace
}  // namespace moeforge::cli
