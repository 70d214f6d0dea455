// `moeforge stats MODEL --data SPEC --tokens N --out STATS_DIR`: forward-only router statistics
// (stats/stats_job.h): usage, gate weights, entropies, co-activation, per-domain counts; optional
// probability dump, expert ablation loss deltas and calibrated sampling.
#include <iostream>

#include "cli/commands.h"
#include "cli/torch/runtime_flags.h"
#include "dist/launch.h"
#include "dist/world.h"
#include "model/device.h"
#include "stats/stats_job.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<stats::StatsOptions>();
  auto runtime = std::make_shared<RuntimeFlags>();
  auto model = std::make_shared<std::string>(), out = std::make_shared<std::string>(), tok = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  auto nproc = std::make_shared<int64_t>(0);
  auto* sub = app.add_subcommand("stats", "Router statistics of a MoE model on data (forward only) -> STATS_DIR");
  accepts_hub_id(sub->add_option("model", *model, "MoE model directory"))->required();
  sub->add_option("--data", o->data, "data spec (.txt, .jsonl with optional \"domain\", mixtures)")->required();
  sub->add_option("--out", *out, "output directory (stats.json, router_moments.safetensors, dumps)")->required();
  sub->add_option("--tokens", o->tokens, "non-padding tokens to count")->capture_default_str();
  accepts_hub_id(sub->add_option("--tokenizer", *tok, "tokenizer directory (default: the model's)"));
  sub->add_option("--block-size", o->block_size, "tokens per sequence")->capture_default_str();
  sub->add_option("--batch-size", o->batch_size, "sequences per forward pass")->capture_default_str();
  sub->add_option("--seed", o->seed, "block order seed")->capture_default_str();
  sub->add_flag("--allow-long-seq", o->allow_long_seq, "allow --block-size beyond max_position_embeddings (RoPE extrapolation)");
  sub->add_option("--max-bad-fraction", o->max_bad_fraction, "bad data records tolerated (skipped with a warning); above: an error")
      ->capture_default_str();
  sub->add_option("--entropy-bins", o->entropy_bins, "bins of the per-token entropy histogram")->capture_default_str();
  sub->add_flag("--dump-probs", o->dump_probs, "also write router_probs.npz and router_probs.safetensors (fp16 [tokens, layers, experts])");
  sub->add_flag("--loss-delta", o->loss_delta, "measure the loss rise when each expert is ablated (1 + layers x experts passes)");
  sub->add_option("--loss-delta-tokens", o->loss_delta_tokens, "tokens in the ablation sample")->capture_default_str();
  sub->add_flag("--calibrate", o->calibrate, "choose blocks greedily so the sample's token distribution matches the data's (KL)");
  sub->add_option("--calibrate-pool", o->calibrate_pool, "candidate blocks for --calibrate (0 = max(8 x needed, 256))");
  sub->add_flag("--overwrite", o->overwrite, "replace an existing output directory");
  sub->add_flag("--quiet", *quiet, "no progress display (as --no-progress)");
  sub->add_flag("--forward-only", o->forward_only, "benchmark baseline: run the same forward passes, collect nothing");
  auto layer_major_mb = std::make_shared<double>(static_cast<double>(o->layer_major_bytes >> 20));
  sub->add_option("--layer-major-mb", *layer_major_mb,
                  "a streamed model (over --max-memory): run batches layer-major in groups of this many MB of hidden "
                  "states, each layer read once per group (capped by half of what the budget leaves; 0 = batch by batch)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--nproc", *nproc, "forward with N local processes (each every N-th batch; or launch with torchrun); rank 0 writes");
  runtime->add_to(sub);
  set_action(sub, [o, runtime, model, out, tok, quiet, nproc, layer_major_mb] {
    o->layer_major_bytes = static_cast<int64_t>(*layer_major_mb * (1 << 20));
    // Launched by torchrun, SLURM or --nproc: this process is one rank.
    const dist::WorldEnv env = dist::world_env_from_environment();
    if (auto code = dist::launch_workers_if_asked(*nproc, env, command_line(), "stats")) return *code;
    o->model = *model;
    o->out = *out;
    o->tokenizer = *tok;
    o->progress = !*quiet;
    o->load = runtime->load_options();
    o->load.device = model::rank_device(o->load.device, env.local_rank, env.local_size);  // "cuda": one GPU per rank
    o->load.local_ranks = env.local_size;  // ranks on this machine share its memory
    o->load.allow_streaming = true;  // batches run through the layers in order: a model over the budget streams
    dist::World world(env);
    o->world = &world;
    stats::RouterStats s = stats::run_stats(*o);
    if (!world.is_main()) return 0;
    std::cout << "wrote " << *out << ": " << s.tokens << " tokens, " << s.blocks << " blocks, " << s.layers.size()
              << " MoE layers, " << s.domains.size() << " domain(s)" << (s.probs_npz.empty() ? "" : ", probability dump")
              << (s.loss_delta_tokens > 0 ? ", loss deltas" : "") << " in " << s.loop_seconds << " s\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
