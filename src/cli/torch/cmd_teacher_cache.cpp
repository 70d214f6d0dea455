// `moeforge teacher-cache MODEL --data SPEC --seq-len T --top-k K [--router-top-k R] --out CACHE`: the
// teacher's top-K token distribution (+ router top-R) over a data set's training blocks, once, for
// `train --teacher-cache`; `--inspect CACHE` prints one.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "data/data_spec.h"
#include "dist/launch.h"
#include "dist/world.h"
#include "io/checkpoint_store.h"
#include "io/toml.h"
#include "model/device.h"
#include "train/recipe.h"
#include "train/teacher_cache.h"

namespace moeforge::cli {
namespace {

struct TeacherCacheCommand {
  std::string model_dir, data_spec, out_dir, tokenizer_dir, inspect, shard, recipe_path, device = "cpu", packing, codec = "compact";
  int64_t seq_len = 0, top_k = 64, router_top_k = 0, batch_size = 4, seed = -1, nproc = 0;
  double validation_fraction = -1, file_gb = 1.0, max_bad_fraction = -1;
  bool no_progress = false, allow_long_seq = false;

  int run() const {
    if (!inspect.empty()) {
      std::cout << train::inspect_teacher_cache(inspect);
      return 0;
    }
    if (model_dir.empty()) fail("teacher-cache: MODEL is required (or --inspect CACHE)");
    if (data_spec.empty()) fail("teacher-cache: --data is required");
    if (out_dir.empty()) fail("teacher-cache: --out CACHE is required");
    train::TeacherCacheOptions o;
    // The data options must be the training run's: take them from its recipe, flags override.
    if (!recipe_path.empty()) {
      const train::Recipe r = train::parse_recipe(read_config_file(recipe_path, "teacher-cache: --recipe"), std::filesystem::path(recipe_path).filename().string());
      o.seed = r.seed;
      o.validation_fraction = r.validation_fraction;
      o.packing = r.packing;
      o.max_bad_fraction = r.max_bad_fraction;
      o.allow_long_seq = r.allow_long_seq;
      for (const auto& p : r.phases)
        if (p.losses.distill.enabled) {
          o.block_size = p.seq_len;
          break;
        }
    }
    if (seq_len > 0) o.block_size = seq_len;
    if (o.block_size == 0) fail("teacher-cache: --seq-len is required (or --recipe with a distilling phase)");
    if (seed >= 0) o.seed = static_cast<uint64_t>(seed);
    if (validation_fraction >= 0) o.validation_fraction = validation_fraction;
    if (!packing.empty()) o.packing = packing;
    if (max_bad_fraction >= 0) o.max_bad_fraction = max_bad_fraction;
    if (allow_long_seq) o.allow_long_seq = true;
    // Launched by torchrun, SLURM or --nproc: each rank writes its share of the files (as --shard rank/size).
    const dist::WorldEnv world = dist::world_env_from_environment();
    if (auto code = dist::launch_workers_if_asked(nproc, world, command_line(), "teacher-cache")) {
      if (*code == 0) std::cout << "teacher-cache: " << out_dir << " is complete (" << nproc << " processes)\n";
      return *code;
    }
    if (world.size > 1 && !shard.empty())
      fail("teacher-cache: --shard ", shard, " inside a launched world of ", world.size, " (", world.source,
           "): each rank already writes its share; drop --shard");
    if (world.size > 1) {
      o.shard_index = world.rank;
      o.shard_count = world.size;
      o.local_ranks = world.local_size;
    }
    if (!shard.empty()) {
      const auto slash = shard.find('/');
      try {
        if (slash == std::string::npos) throw std::invalid_argument(shard);
        o.shard_index = std::stoll(shard.substr(0, slash));
        o.shard_count = std::stoll(shard.substr(slash + 1));
      } catch (const std::exception&) {
        fail("teacher-cache: --shard '", shard, "': want i/n, e.g. 0/4");
      }
    }
    if (file_gb <= 0) fail("teacher-cache: --file-gb must be > 0");
    o.teacher_dir = model_dir;
    o.tokenizer_dir = tokenizer_dir;
    o.out_dir = out_dir;
    o.data_spec = data::resolve_data_spec(std::filesystem::current_path(), data_spec);
    o.top_k = top_k;
    o.router_top_k = router_top_k;
    o.codec = train::parse_cache_codec(codec, "teacher-cache: --codec");
    o.batch_size = batch_size;
    o.file_bytes = static_cast<int64_t>(file_gb * 1e9);
    o.device = model::rank_device(model::parse_device(device, "teacher-cache: --device"), world.local_rank, world.local_size,
                                  "teacher-cache: --device").str();  // "cuda": one GPU per rank
    o.progress = !no_progress;
    const auto r = train::write_teacher_cache(o);
    std::cout << "teacher-cache: " << r.files_written << " files written (" << r.tokens << " tokens, " << r.bytes << " bytes, "
              << (r.tokens > 0 ? static_cast<double>(r.bytes) / static_cast<double>(r.tokens) : 0.0) << " B/token, " << (r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0.0)
              << " tokens/s), " << r.files_present << " already present";
    if (r.files_missing > 0)
      std::cout << ", " << r.files_missing << " left to the other shards: the cache is complete when every --shard i/" << o.shard_count
                << " has run\n";
    else
      std::cout << "; " << out_dir << " is complete\n";
    return 0;
  }
};

const CommandRegistrar registrar([](CLI::App& app) {
  auto c = std::make_shared<TeacherCacheCommand>();
  auto* sub = app.add_subcommand("teacher-cache", "Precompute a teacher's top-K token distributions (and router top-R) for distillation");
  accepts_hub_id(sub->add_option("model", c->model_dir, "teacher model directory"));
  sub->add_option("--data", c->data_spec, "data spec: the training run's");
  sub->add_option("--out", c->out_dir, "cache directory (an interrupted or partial cache is completed)");
  sub->add_option("--seq-len", c->seq_len, "block size: the distilling phase's seq_len");
  sub->add_option("--recipe", c->recipe_path, "the training recipe: seed, validation_fraction, packing, seq_len of its first distilling phase");
  sub->add_option("--top-k", c->top_k, "token ids kept per position (default 64)");
  sub->add_option("--codec", c->codec, "token part: compact (default; ~2x smaller, KL error <= 7.7e-6 K nats) or bf16");
  sub->add_option("--router-top-k", c->router_top_k, "router logits kept per MoE layer and position (0 = none; E = all, exact)");
  accepts_hub_id(sub->add_option("--tokenizer", c->tokenizer_dir, "tokenizer directory (default: the teacher's)"));
  sub->add_option("--seed", c->seed, "data seed (the recipe's \"seed\")");
  sub->add_option("--validation-fraction", c->validation_fraction, "the recipe's validation_fraction");
  sub->add_option("--packing", c->packing, "concat or per-document (the recipe's packing)");
  sub->add_flag("--allow-long-seq", c->allow_long_seq, "allow --seq-len beyond max_position_embeddings (RoPE extrapolation)");
  sub->add_option("--max-bad-fraction", c->max_bad_fraction, "bad data records tolerated (the recipe's; default 0.01)");
  sub->add_option("--batch-size", c->batch_size, "blocks per teacher forward (default 4)");
  sub->add_option("--nproc", c->nproc, "write the cache with N local processes, each a --shard of it (or launch with torchrun)");
  sub->add_option("--shard", c->shard, "i/n: write only every n-th file starting at i (several processes, one cache)");
  sub->add_option("--file-gb", c->file_gb, "size cap of one blocks file in GB (default 1)");
  sub->add_option("--device", c->device, "cpu or cuda[:N]");
  sub->add_option("--inspect", c->inspect, "print the manifest and completeness of CACHE and exit");
  sub->add_flag("--no-progress", c->no_progress, "no progress output on stderr");
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
