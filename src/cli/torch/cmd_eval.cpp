// `moeforge eval MODEL --data SPEC [--baseline MODEL2]`: perplexity, per-domain loss, expert usage,
// balance score and balanced perplexity; with a baseline, both side by side, their mean KL, top-1
// agreement and router drift.
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "arch/family_adapter.h"
#include "cli/commands.h"
#include "cli/torch/runtime_flags.h"
#include "common/error.h"
#include "data/dataset.h"
#include "dist/launch.h"
#include "dist/world.h"
#include "model/device.h"
#include "eval/evaluate.h"
#include "io/checkpoint_store.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"
#include "train/teacher.h"

namespace moeforge::cli {
namespace {

struct EvalCommand {
  std::string model_dir, data_spec, baseline_dir, tokenizer_dir, split = "all";
  int64_t block_size = 512, max_blocks = 0, batch_size = 8, nproc = 0;
  double validation_fraction = 0.05, max_bad_fraction = 0.01, layer_major_mb = 512;
  bool allow_long_seq = false;
  uint64_t seed = 0;
  bool json = false, progress = true;
  RuntimeFlags runtime;

  // A baseline is compared token by token: the same tokenizer, vocabularies equal up to a padded
  // tail (the tokenizer's ids are compared). Checked from the configs, before loading either model.
  int64_t compare_vocab() const {
    namespace fs = std::filesystem;
    const fs::path tok = tokenizer_dir.empty() ? fs::path(model_dir) : fs::path(tokenizer_dir);
    if (fs::exists(fs::path(baseline_dir) / "tokenizer.json") && fs::exists(tok / "tokenizer.json")) {
      const std::string diff = train::tokenizer_difference(baseline_dir, tok);
      if (!diff.empty()) fail("--baseline ", baseline_dir, ": its tokenizer is not the model's (", tok.string(), "): ", diff);
    }
    const int64_t Vm = load_model_spec(*CheckpointStore::open(model_dir)).vocab_size;
    const int64_t Vb = load_model_spec(*CheckpointStore::open(baseline_dir)).vocab_size;
    if (Vm == Vb) return 0;
    const int64_t tokens = fs::exists(tok / "tokenizer.json") ? static_cast<int64_t>(Tokenizer::load(tok).vocab_size()) : 0;
    if (tokens == 0 || tokens > std::min(Vm, Vb))
      fail("--baseline ", baseline_dir, ": vocabulary ", Vb, " vs the model's ", Vm,
           tokens == 0 ? std::string(" and no tokenizer.json to tell a padded tail") : " (the tokenizer has " + std::to_string(tokens) + " ids)",
           ": not equal up to padding");
    return tokens;
  }

  int run() const {
    // Launched by torchrun, SLURM or --nproc: each rank scores every N-th batch, rank 0 reports.
    const dist::WorldEnv env = dist::world_env_from_environment();
    if (auto code = dist::launch_workers_if_asked(nproc, env, command_line(), "eval")) return *code;
    check_sequence_length(load_model_spec(*CheckpointStore::open(model_dir)), block_size, "eval: --block-size", allow_long_seq);
    const int64_t compared = baseline_dir.empty() ? 0 : compare_vocab();
    model::LoadOptions load = runtime.load_options();
    load.device = model::rank_device(load.device, env.local_rank, env.local_size);  // "cuda": one GPU per rank
    load.local_ranks = env.local_size;  // ranks on this machine share its memory
    load.allow_streaming = true;  // batches run through the layers in order: a model over the budget streams
    auto model = model::Transformer::load(model_dir, load);
    std::unique_ptr<model::Transformer> baseline;
    if (!baseline_dir.empty()) baseline = model::Transformer::load(baseline_dir, load);
    data::DataOptions options;
    options.block_size = block_size;
    options.seed = seed;
    options.max_bad_fraction = max_bad_fraction;
    data::Split which = data::Split::Train;
    if (split == "all") {
      options.validation_fraction = 0.0;  // every document lands in the train split: score all of it
    } else if (split == "validation") {
      options.validation_fraction = validation_fraction;
      which = data::Split::Validation;
    } else {
      fail("--split '", split, "' is not 'all' or 'validation'");
    }
    dist::World world(env);
    auto dataset = world.main_first([&] {  // rank 0 fills the token cache, the others read it
      return data::Dataset::open(data_spec, tokenizer_dir.empty() ? model_dir : tokenizer_dir, options);
    });
    const auto sequences = eval::sequences_of(dataset, which, max_blocks);
    if (sequences.empty()) fail(data_spec, ": no ", split == "all" ? "" : "validation ", "blocks to evaluate");
    eval::EvalOptions eval_options;
    eval_options.batch_size = batch_size;
    eval_options.progress = progress;
    eval_options.compare_vocab = compared;
    eval_options.world = &world;
    eval_options.layer_major_bytes = static_cast<int64_t>(layer_major_mb * (1 << 20));
    auto result = eval::evaluate(*model, sequences, eval_options, baseline.get());
    if (!world.is_main()) return 0;
    if (json) {
      auto j = eval::to_json(result);
      j["model"] = model_dir;
      if (baseline) j["baseline"]["model"] = baseline_dir;
      j["blocks"] = sequences.size();
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "model: " << model_dir << (baseline ? "   baseline: " + baseline_dir : "") << "\n";
      std::cout << eval::to_table(result);
    }
    return 0;
  }
};

const CommandRegistrar registrar([](CLI::App& app) {
  auto c = std::make_shared<EvalCommand>();
  auto* sub = app.add_subcommand("eval", "Perplexity, expert balance and balanced perplexity (optionally vs a baseline)");
  accepts_hub_id(sub->add_option("model", c->model_dir, "model directory"))->required();
  sub->add_option("--data", c->data_spec, "data spec (.txt, .jsonl, chat .jsonl, dirs, mixtures)")->required();
  sub->add_option("--baseline", c->baseline_dir, "baseline model (a teacher, the model before training): same tokenizer, vocabulary equal up to padding");
  accepts_hub_id(sub->add_option("--tokenizer", c->tokenizer_dir, "tokenizer directory (default: the model's)"));
  sub->add_option("--split", c->split, "'all' (default) or 'validation' (the held-out split training uses)");
  sub->add_option("--validation-fraction", c->validation_fraction, "with --split validation")->capture_default_str();
  sub->add_option("--block-size", c->block_size, "tokens per sequence")->capture_default_str();
  sub->add_option("--max-blocks", c->max_blocks, "evaluate at most this many blocks (0 = all)");
  sub->add_option("--batch-size", c->batch_size, "sequences per forward pass")->capture_default_str();
  sub->add_option("--layer-major-mb", c->layer_major_mb,
                  "a streamed model (over --max-memory): run batches of one length layer-major in groups of this many MB of "
                  "hidden states, each layer read once per group (capped by half of what the budget leaves; 0 = batch by batch)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--nproc", c->nproc, "score with N local processes (each every N-th batch; or launch with torchrun); rank 0 reports");
  sub->add_option("--seed", c->seed, "data split/order seed")->capture_default_str();
  sub->add_flag("--allow-long-seq", c->allow_long_seq, "allow --block-size beyond max_position_embeddings (RoPE extrapolation)");
  sub->add_option("--max-bad-fraction", c->max_bad_fraction, "bad data records tolerated (skipped with a warning); above: an error")
      ->capture_default_str();
  sub->add_flag("--json", c->json, "machine-readable output");
  sub->add_flag("--progress", c->progress, "progress on stderr (the default; moeforge --no-progress silences it)");
  c->runtime.add_to(sub);
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
