// `moeforge merge --base B --expert NAME=DIR [..] --top-k K --to FAMILY --out DIR`, or
// `moeforge merge --mergekit-config moe.yml --out DIR`: dense models -> one MoE, each source's FFN
// an expert (surgery/merge.h, surgery/mergekit_config.h).
#include "cli/commands.h"
#include "cli/torch/surgery_flags.h"
#include "common/error.h"
#include "common/hf_cache.h"
#include "surgery/merge.h"
#include "surgery/mergekit_config.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<surgery::MergeOptions>();
  auto flags = std::make_shared<SurgeryFlags>();
  auto base = std::make_shared<std::string>();
  auto mergekit = std::make_shared<std::string>();
  auto experts = std::make_shared<std::vector<std::string>>();
  auto no_renorm = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("merge", "Merge dense models of one architecture into a MoE (one expert per model)");
  auto* mk = sub->add_option("--mergekit-config", *mergekit,
                             "a mergekit-moe YAML (base_model, experts with prompts, gate_mode, experts_per_token, ...) "
                             "instead of the flags below");
  auto* base_flag = accepts_hub_id(sub->add_option("--base", *base, "base model: architecture, non-FFN tensors (--non-ffn base), hidden states"));
  auto* expert_flag = sub->add_option("--expert", *experts, "NAME=DIR, repeated: each model's FFN becomes an expert");
  auto* top_k = sub->add_option("--top-k", o->top_k, "experts per token");
  auto* to = sub->add_option("--to", o->to, "target family: mixtral | qwen3_moe | qwen2_moe | olmoe | gpt_neo_moe (default mixtral; gpt_neo_moe for gpt_neo sources)");
  auto non_ffn = std::make_shared<std::string>("average");
  auto router = std::make_shared<std::string>();
  auto* non_ffn_flag = sub->add_option("--non-ffn", *non_ffn, "average (over the expert models) | base");
  auto* router_flag = sub->add_option(
      "--router", *router,
      "router init: hidden | hidden_avg | cheap_embed | random | uniform_random (mergekit-moe's gate modes) | ffn_input | "
      "normal | zero (default hidden with --prompts, else normal)");
  auto* std_flag = sub->add_option("--router-std", o->router_std, "--router normal: std (default 0.02)");
  auto* prompts = sub->add_option("--prompts", o->prompts, "JSON {NAME: [prompts]} for the prompt-based routers");
  auto* shared = sub->add_flag("--shared-expert", o->shared_expert, "qwen2_moe: keep the base FFN as the shared expert");
  auto* renorm = sub->add_flag("--no-renormalize", *no_renorm, "norm_topk_prob false (experts scaled by E/K)");
  sub->add_option("--seed", o->seed, "seed (default 0)");
  flags->add_to(sub);
  set_action(sub, [=] {
    if (!mergekit->empty()) {
      for (CLI::Option* f : {base_flag, expert_flag, top_k, to, non_ffn_flag, router_flag, std_flag, prompts, shared, renorm})
        if (f->count()) fail("merge: ", f->get_name(), " cannot be combined with --mergekit-config (the YAML says it)");
      const uint64_t seed = o->seed;
      *o = surgery::read_mergekit_config(*mergekit);
      o->seed = seed;
    } else {
      for (CLI::Option* f : {base_flag, expert_flag, top_k})
        if (!f->count()) fail("merge: ", f->get_name(), " is required (or give --mergekit-config moe.yml)");
      o->non_ffn = surgery::parse_non_ffn(*non_ffn);
      if (!router->empty()) o->router = surgery::parse_router_init(*router);
      if (std_flag->count() && o->router.value_or(surgery::RouterInit::Normal) != surgery::RouterInit::Normal)
        fail("merge: --router-std sets the spread of --router normal; --router ", *router,
             " has its own (random is mergekit's N(0, 1))");
      o->base = *base;
      for (const auto& item : *experts) {
        auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0) fail("--expert: '", item, "' is not NAME=DIR");
        o->experts.emplace_back(item.substr(0, eq), resolve_hub_reference(item.substr(eq + 1)));
      }
      o->renormalize = !*no_renorm;
    }
    o->out = flags->out;
    o->execute = flags->options();
    surgery::merge(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
