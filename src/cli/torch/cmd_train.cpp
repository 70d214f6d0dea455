// `moeforge train MODEL --data SPEC --recipe RECIPE --out RUN_DIR`: phased training from a recipe;
// `--resume RUN_DIR` continues an interrupted run; `--list-params` shows what each phase trains.
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "dist/launch.h"
#include "dist/world.h"
#include "io/checkpoint_store.h"
#include "io/toml.h"
#include "train/trainer.h"

namespace moeforge::cli {
namespace {

struct TrainCommand {
  std::string model_dir, data_spec, recipe_path, out_dir, resume_dir, tokenizer_dir, plan_path, device, teacher_dir, teacher_cache, teacher_device;
  bool list_params = false, dequantize = false, expert_parallel = false, no_progress = false, no_tensorboard = false, verbose = false;
  int64_t threads = 0, stop_after_steps = 0, dump_steps = 0, nproc = 0, zero = 0;
  double max_bad_fraction = -1, max_memory_gb = -1, bucket_mb = 25;

  int run() const {
    // Launched by torchrun, SLURM or --nproc: this process is one rank of a data-parallel run.
    const dist::WorldEnv env = dist::world_env_from_environment();
    // The flags alone, before any worker starts: a bad one is one line, not one per rank.
    if (zero < 0 || zero > 3)
      fail("train: --zero ", zero, ": stages 0 (replicated), 1 (optimiser state sharded), 2 (and gradients) and 3 (and frozen "
           "weights) exist");
    if (zero >= 2 && dump_steps > 0)
      fail("train: --dump-steps writes every gradient from rank 0, which --zero 2 does not keep; use --zero 0 or 1");
    if (zero >= 3 && expert_parallel && (nproc > 1 || env.size > 1))
      fail("train: --zero 3 with --expert-parallel is not supported (each splits the experts its own way); choose one");
    if (!(bucket_mb >= 0)) fail("train: --bucket-mb ", bucket_mb, " must be >= 0 (0: one all-reduce after the backward)");
    // --list-params plans one rank of the run without launching it.
    if (!list_params)
      if (auto code = dist::launch_workers_if_asked(nproc, env, command_line(), "train")) return *code;
    if (env.size > 1 && !dist::distributed_supported())
      fail("train: launched as rank ", env.rank, " of ", env.size, " but this moeforge was built without c10d's Gloo backend "
           "(install libgloo-dev and re-run cmake)");
    train::TrainOptions o;
    o.zero_stage = static_cast<int>(zero);
    o.expert_parallel = expert_parallel;
    o.bucket_mb = bucket_mb;
    if (!resume_dir.empty()) {
      o.resume = true;
      o.out_dir = resume_dir;
      if (!out_dir.empty() && out_dir != resume_dir) fail("--resume RUN_DIR continues in RUN_DIR; drop --out or make it the same");
      if (!recipe_path.empty()) {  // overrides the run's recipe.json (printed as a diff)
        o.recipe = read_config_file(recipe_path, "train: --recipe");
        o.recipe_label = std::filesystem::path(recipe_path).filename().string();
      }
    } else {
      if (model_dir.empty()) fail("train: MODEL is required (or --resume RUN_DIR)");
      if (recipe_path.empty()) fail("train: --recipe is required");
      nlohmann::json recipe = read_config_file(recipe_path, "train: --recipe");  // JSON or TOML
      if (threads > 0) recipe["threads"] = threads;
      if (list_params) {
        const int ranks = nproc > 0 ? static_cast<int>(nproc) : env.size;
        std::cout << train::list_params(model_dir, recipe, std::filesystem::path(recipe_path).filename().string(), plan_path, dequantize,
                                        train::data_parallel_shape(ranks, static_cast<int>(zero), bucket_mb));
        return 0;
      }
      if (data_spec.empty()) fail("train: --data is required");
      if (out_dir.empty()) fail("train: --out RUN_DIR is required");
      o.recipe = recipe;
      o.recipe_label = std::filesystem::path(recipe_path).filename().string();
      o.out_dir = out_dir;
    }
    o.model_dir = model_dir;
    o.data_spec = data_spec;
    o.tokenizer_dir = tokenizer_dir;
    o.analysis_plan = plan_path;
    o.teacher_dir = teacher_dir;
    o.teacher_cache = teacher_cache;
    o.teacher_device = teacher_device;
    o.max_bad_fraction = max_bad_fraction;
    o.device = device;
    o.progress = !no_progress;
    o.tensorboard = !no_tensorboard;
    o.stop_after_steps = stop_after_steps;
    o.dump_steps = dump_steps;
    o.dequantize = dequantize;
    if (max_memory_gb >= 0) o.max_memory_bytes = static_cast<int64_t>(max_memory_gb * 1e9);
    o.verbose = verbose;
    std::unique_ptr<dist::World> world;
    if (env.size > 1 && !list_params) {
      world = std::make_unique<dist::World>(env);
      o.world = world.get();
    }
    train::Trainer trainer(o);
    auto result = trainer.run();
    if (world && !world->is_main()) return 0;  // rank 0 reports
    if (!result.finished) {
      std::cout << "stopped after step " << result.steps << "; continue with --resume " << result.out_dir.string() << "\n";
      return 0;
    }
    std::cout << "trained " << result.steps << " steps; " << result.trainable.size() << " tensors in "
              << (result.out_dir / "trainable.safetensors").string() << "\n";
    return 0;
  }
};

const CommandRegistrar registrar([](CLI::App& app) {
  auto c = std::make_shared<TrainCommand>();
  auto* sub = app.add_subcommand("train", "Train selected tensors (full or LoRA) of a model through a phased recipe");
  accepts_hub_id(sub->add_option("model", c->model_dir, "model directory (omit with --resume)"));
  sub->add_option("--data", c->data_spec, "data spec (.txt, .jsonl, chat .jsonl, dirs, mixtures)");
  sub->add_option("--recipe", c->recipe_path, "recipe, JSON or .toml (see docs/TRAINING.md and recipes/)");
  sub->add_option("--out", c->out_dir, "run directory (checkpoints, metrics, trainable.safetensors)");
  sub->add_option("--resume", c->resume_dir, "continue the run in RUN_DIR from its latest checkpoint");
  accepts_hub_id(sub->add_option("--tokenizer", c->tokenizer_dir, "tokenizer directory (default: the model's)"));
  accepts_hub_id(sub->add_option("--teacher", c->teacher_dir,
                  "distillation teacher (same tokenizer): every distilling phase's; alone, every phase distils with the defaults"));
  sub->add_option("--max-bad-fraction", c->max_bad_fraction,
                  "bad data records tolerated (skipped with a warning), e.g. 0.05; above it the run stops (default: the recipe's, 0.01)");
  sub->add_option("--teacher-device", c->teacher_device, "device of the online teacher (default: the student's), e.g. cuda:1");
  sub->add_option("--teacher-cache", c->teacher_cache, "distil from a `moeforge teacher-cache` directory instead of an online teacher");
  sub->add_option("--plan", c->plan_path, "plan.json of `moeforge analyze` for the experts=plan:esft selectors");
  sub->add_option("--device", c->device, "cpu or cuda[:N] (default cpu; on --resume, the run's)");
  sub->add_option("--threads", c->threads, "torch threads (overrides the recipe's \"threads\")");
  sub->add_option("--nproc", c->nproc,
                  "data parallel over N local processes (c10d Gloo; as `torchrun --no-python --nproc-per-node N moeforge train ...`, "
                  "which works too): global batch = batch_size x N x grad_accum");
  sub->add_option("--zero", c->zero, "with several ranks: 1 = each rank keeps the optimiser state of its share of the "
                  "trained tensors only (ZeRO-1); 2 = their gradients too (ZeRO-2); 3 = and 1/N of every frozen "
                  "weight (layers, embedding, LM head, an online teacher; packed experts on GPUs or over several machines), each layer "
                  "gathered when it runs and recomputed in the backward (ZeRO-3); each rank writes its share of a checkpoint, "
                  "which resumes on any number of ranks")
      ->capture_default_str();
  sub->add_option("--bucket-mb", c->bucket_mb,
                  "with several ranks: gradients are summed in buckets of this many MB while the backward runs "
                  "(0: in one all-reduce after it)")
      ->capture_default_str();
  sub->add_flag("--expert-parallel", c->expert_parallel,
                "with several ranks: each computes one block of every MoE layer's experts for the tokens of all ranks "
                "(tokens exchanged by all-to-all); the same run as without it");
  sub->add_flag("--dequantize", c->dequantize,
                "MXFP4 models: load every expert dense (default: frozen experts stay packed, 4.25 bits per weight, and "
                "only the trained ones are held dense)");
  sub->add_flag("--list-params", c->list_params, "print what each phase's selectors pick, and the run's predicted memory, and exit");
  sub->add_option("--max-memory", c->max_memory_gb,
                  "memory budget in GB (default: MemAvailable): a run whose predicted peak (weights, training state, "
                  "activations) exceeds it is refused before loading");
  sub->add_flag("--verbose", c->verbose, "print the memory plan (weights, training state, activations) before loading");
  sub->add_flag("--no-progress", c->no_progress, "no progress output on stderr");
  sub->add_flag("--no-tensorboard", c->no_tensorboard, "do not write TensorBoard event files");
  sub->add_option("--stop-after-steps", c->stop_after_steps, "stop (as if interrupted) after this many steps; for tests")
      ->group("");
  sub->add_option("--dump-steps", c->dump_steps,
                  "debugging: write RUN/dump/step_<i>.safetensors (batch, losses, gradients) for the first N steps")
      ->group("");
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
