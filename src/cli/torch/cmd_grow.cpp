// `moeforge grow MOE (--clone L:E[,..] | --plan plan.json) --out DIR`: append expert clones (surgery/grow.h).
#include "cli/commands.h"
#include "cli/torch/surgery_flags.h"
#include "surgery/grow.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<surgery::GrowOptions>();
  auto flags = std::make_shared<SurgeryFlags>();
  auto source = std::make_shared<std::string>();
  auto plan = std::make_shared<std::string>();
  auto no_verify = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("grow", "Add experts to a MoE by cloning existing ones (indices never move)");
  accepts_hub_id(sub->add_option("model", *source, "MoE model directory"))->required();
  sub->add_option("--clone", o->clone, "LAYER:EXPERT[,..] sources to clone; '*:E' clones E in every MoE layer");
  sub->add_option("--plan", *plan, "plan JSON with \"clone\" (see src/arch/plan.h)");
  sub->add_option("--router-noise", o->router_noise, "clone router rows: noise std relative to the row RMS (default 0.01)");
  auto offset = std::make_shared<std::string>("auto");
  auto router_bias = std::make_shared<std::string>();
  sub->add_option("--offset", *offset, "auto | split (bias - log(m+1) for source and clones; routers with a bias) | none");
  sub->add_option("--router-bias", *router_bias,
                  "old:VALUE | new:VALUE selection-only bias (stored; outputs load in transformers with remote code). "
                  "Exact starts (max logit difference 0, fp32): GPT-OSS --offset none --router-bias old:50; DeepSeek-V3 "
                  "(no group limit) old:1; Mixtral/Qwen3-MoE old:1 (float rounding only, <= 3e-7); OLMoE/Qwen2-MoE: "
                  "none (docs/PIPELINE.md)");
  sub->add_flag("--dequantize", o->dequantize, "write MXFP4 experts as bf16");
  sub->add_option("--seed", o->seed, "seed (default 0)");
  sub->add_flag("--no-verify", *no_verify, "skip measuring the logit difference original vs grown");
  flags->add_to(sub);
  set_action(sub, [o, flags, source, plan, no_verify, offset, router_bias] {
    o->offset = surgery::parse_clone_offset(*offset);
    o->router_bias = surgery::parse_selection_bias(*router_bias);
    o->source = *source;
    o->plan = *plan;
    o->out = flags->out;
    o->verify = !*no_verify;
    o->execute = flags->options();
    surgery::grow(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
