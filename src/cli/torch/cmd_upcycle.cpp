// `moeforge upcycle DENSE --experts N --top-k K --to FAMILY --out DIR`: dense -> MoE (surgery/upcycle.h).
#include "cli/commands.h"
#include "cli/torch/surgery_flags.h"
#include "common/error.h"
#include "surgery/upcycle.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<surgery::UpcycleOptions>();
  auto flags = std::make_shared<SurgeryFlags>();
  auto source = std::make_shared<std::string>();
  auto no_renorm = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("upcycle", "Turn a dense model into a MoE (experts from its FFN)");
  accepts_hub_id(sub->add_option("model", *source, "dense model directory (llama, mistral, qwen2, qwen3, gpt_neo)"))->required();
  sub->add_option("--experts", o->num_experts, "number of experts per MoE layer")->required();
  sub->add_option("--top-k", o->top_k, "experts per token")->required();
  sub->add_option("--to", o->to, "target family: mixtral | qwen3_moe | qwen2_moe | olmoe | gpt_neo_moe (the one target of a gpt_neo source)")->required();
  auto method = std::make_shared<std::string>("copy");
  auto router = std::make_shared<std::string>("zero");
  sub->add_option("--method", *method, "copy | noise | drop | granular (default copy)");
  sub->add_option("--noise-std", o->noise_std, "noise: std relative to each matrix's RMS (default 0.01)");
  sub->add_option("--drop-ratio", o->drop_ratio, "drop: fraction of intermediate units re-initialised (default 0.5)");
  sub->add_option("--granularity", o->granularity, "granular: slices of the FFN width per copy");
  sub->add_option("--router", *router,
                  "router init: zero (default) | normal | ffn_input | hidden | hidden_avg | cheap_embed | random | "
                  "uniform_random (the last five: mergekit-moe's gate modes)");
  auto* std_flag = sub->add_option("--router-std", o->router_std, "--router normal: std (default 0.02)");
  sub->add_option("--prompts", o->prompts, "prompt-based routers: JSON of per-expert prompts");
  sub->add_option("--layers", o->layers, "layers to upcycle: all | 0,2,4-7 (qwen*_moe targets)");
  sub->add_option("--seed", o->seed, "seed for every random choice (default 0)");
  sub->add_flag("--no-renormalize", *no_renorm,
                "keep norm_topk_prob false (olmoe/qwen*_moe); experts are scaled by E/K so copy stays exact");
  sub->add_flag("--verify", o->verify, "run dense and MoE models and print the max logit difference");
  flags->add_to(sub);
  set_action(sub, [o, flags, source, no_renorm, method, router, std_flag] {
    o->method = surgery::parse_upcycle_method(*method);
    o->router = surgery::parse_router_init(*router);
    if (std_flag->count() && o->router != surgery::RouterInit::Normal)
      fail("upcycle: --router-std sets the spread of --router normal; --router ", *router,
           " has its own (random is mergekit's N(0, 1))");
    o->source = *source;
    o->out = flags->out;
    o->renormalize = !*no_renorm;
    o->execute = flags->options();
    surgery::upcycle(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
