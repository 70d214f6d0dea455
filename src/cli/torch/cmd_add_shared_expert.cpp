// `moeforge add-shared-expert MOE --init INIT [--plan F] --out DIR`: adds an always-on shared
// expert to every MoE layer (surgery/shared_expert.h).
#include "cli/commands.h"
#include "cli/torch/surgery_flags.h"
#include "surgery/shared_expert.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<surgery::SharedExpertOptions>();
  auto flags = std::make_shared<SurgeryFlags>();
  auto source = std::make_shared<std::string>();
  auto plan = std::make_shared<std::string>();
  auto learned = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("add-shared-expert", "Add a shared (always-on) expert to every MoE layer");
  accepts_hub_id(sub->add_option("model", *source, "MoE model directory"))->required();
  auto init = std::make_shared<std::string>("mean");
  auto gate = std::make_shared<std::string>("fixed");
  sub->add_option("--init", *init, "mean | random | top1 | top1_average | top4_average | pca_topK (default mean)");
  sub->add_option("--plan,--stats", *plan, "plan/stats JSON with per-layer usage or importance (src/arch/plan.h)");
  sub->add_option("--scale", o->scale, "shared expert output scale (default 0.2; 0 = the original model)");
  sub->add_flag("--learned-scale", *learned, "store the scale as a learned tensor");
  sub->add_option("--gate", *gate, "fixed | learned | sigmoid (Qwen2-MoE style; scale folded into down_proj)");
  sub->add_option("--width", o->width, "shared expert width (default: the routed expert width; --init random only)");
  sub->add_option("--random-std", o->random_std, "--init random: std (default 0.02)");
  sub->add_option("--seed", o->seed, "seed (default 0)");
  sub->add_flag("--verify", o->verify, "run both models and print the max logit difference");
  flags->add_to(sub);
  set_action(sub, [o, flags, source, plan, learned, init, gate] {
    o->init = surgery::parse_shared_init(*init);
    o->gate = *learned ? surgery::SharedGate::Learned : surgery::parse_shared_gate(*gate);
    o->source = *source;
    o->plan = *plan;
    o->out = flags->out;
    o->execute = flags->options();
    surgery::add_shared_expert(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
