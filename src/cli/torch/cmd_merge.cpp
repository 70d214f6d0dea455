// `moeforge merge --base B --expert NAME=DIR [..] --top-k K --to FAMILY --out DIR`: dense models ->
// one MoE, each source's FFN an expert (surgery/merge.h).
#include "cli/commands.h"
#include "cli/torch/surgery_flags.h"
#include "common/error.h"
#include "surgery/merge.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<surgery::MergeOptions>();
  auto flags = std::make_shared<SurgeryFlags>();
  auto base = std::make_shared<std::string>();
  auto experts = std::make_shared<std::vector<std::string>>();
  auto no_renorm = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("merge", "Merge dense models of one architecture into a MoE (one expert per model)");
  sub->add_option("--base", *base, "base model: architecture, non-FFN tensors (--non-ffn base), hidden states")->required();
  sub->add_option("--expert", *experts, "NAME=DIR, repeated: each model's FFN becomes an expert")->required();
  sub->add_option("--top-k", o->top_k, "experts per token")->required();
  sub->add_option("--to", o->to, "target family: mixtral | qwen3_moe | qwen2_moe | olmoe (default mixtral)");
  auto non_ffn = std::make_shared<std::string>("average");
  auto router = std::make_shared<std::string>();
  sub->add_option("--non-ffn", *non_ffn, "average (over the expert models) | base");
  sub->add_option("--router", *router, "hidden | random | zero (default hidden with --prompts, else random)");
  sub->add_option("--router-std", o->router_std, "random router: std (default 0.02)");
  sub->add_option("--prompts", o->prompts, "JSON {NAME: [prompts]} for the hidden router");
  sub->add_flag("--shared-expert", o->shared_expert, "qwen2_moe: keep the base FFN as the shared expert");
  sub->add_flag("--no-renormalize", *no_renorm, "norm_topk_prob false (experts scaled by E/K)");
  sub->add_option("--seed", o->seed, "seed (default 0)");
  flags->add_to(sub);
  set_action(sub, [o, flags, base, experts, no_renorm, non_ffn, router] {
    o->non_ffn = surgery::parse_non_ffn(*non_ffn);
    if (!router->empty()) o->router = surgery::parse_router_init(*router);
    o->base = *base;
    for (const auto& item : *experts) {
      auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0) fail("--expert: '", item, "' is not NAME=DIR");
      o->experts.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    o->renormalize = !*no_renorm;
    o->out = flags->out;
    o->execute = flags->options();
    surgery::merge(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
