// `moeforge train-expert MODEL [--layer L] --experts 0 3 --method full|lora [--force-route] --data SPEC
// --out RUN_DIR`: MoE Lab's train-expert flow as a one-phase recipe (recipes/train-expert.json):
// AdamW lr 8e-5, 5 % linear warmup then linear decay, clip 1.0, LoRA r16 alpha 32 dropout 0.
// --layer defaults to the last layer and counts from the end when negative; on a dense layer (a dense
// model, or a dense layer of an MoE) the layer's FFN is trained instead, as MoE Lab does.
#include <iostream>

#include "arch/family_adapter.h"
#include "cli/commands.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "train/trainer.h"

namespace moeforge::cli {
namespace {

struct TrainExpertCommand {
  std::string model_dir, data_spec, out_dir, tokenizer_dir, method = "full", device = "cpu", precision = "fp32";
  int64_t layer = -1, steps = 100, batch_size = 8, seq_len = 512, rank = 16, grad_accum = 1, threads = 0;
  std::vector<int64_t> experts;
  double lr = 8e-5, alpha = 32.0;
  bool force_route = false, list_params = false, no_progress = false;
  uint64_t seed = 0;

  // The layer (negative: from the end) and what to train in it: its experts, or its FFN when it is dense.
  struct Target {
    int64_t layer = 0;
    bool dense = false;
  };
  Target target() const {
    const ModelSpec spec = load_model_spec(*CheckpointStore::open(model_dir));
    Target t;
    t.layer = layer < 0 ? spec.num_layers + layer : layer;
    if (t.layer < 0 || t.layer >= spec.num_layers)
      fail("train-expert: --layer ", layer, ": ", model_dir, " has ", spec.num_layers, " layers (0..", spec.num_layers - 1,
           ", or -1 for the last)");
    t.dense = !spec.is_moe[static_cast<size_t>(t.layer)];
    return t;
  }

  nlohmann::json recipe(const Target& t) const {
    std::string select;
    if (t.dense) {
      select = "layers." + std::to_string(t.layer) + ".mlp.*";
    } else {
      if (experts.empty()) fail("train-expert: --experts needs at least one expert index (layer ", t.layer, " is an MoE layer)");
      std::string sel;
      for (int64_t e : experts) sel += (sel.empty() ? "" : ",") + std::to_string(t.layer) + ":" + std::to_string(e);
      select = "experts=" + sel;
    }
    nlohmann::json phase = {{"name", "train-expert"}, {"steps", steps}, {"batch_size", batch_size}, {"seq_len", seq_len},
                            {"grad_accum", grad_accum}, {"select", {select}}, {"method", method},
                            {"lora", {{"rank", rank}, {"alpha", alpha}, {"dropout", 0.0}}},
                            {"losses", {{"lb_coef", 0.0}, {"z_coef", 0.0}}},
                            {"optimizer", {{"type", "adamw"}, {"lr", lr}, {"betas", {0.9, 0.999}}, {"weight_decay", 0.0}}},
                            {"schedule", {{"type", "linear"}, {"warmup_fraction", 0.05}}},
                            {"clip_grad_norm", 1.0}};
    if (force_route && !t.dense) phase["routing"] = {{"force_route", "selected"}, {"force_route_bias", 12.0}};
    nlohmann::json r = {{"name", "train-expert"}, {"seed", seed}, {"precision", precision}, {"phases", {phase}}};
    if (threads > 0) r["threads"] = threads;
    return r;
  }

  int run() const {
    const Target t = target();
    if (t.dense)
      std::cerr << "moeforge: note: layer " << t.layer << " of " << model_dir << " is dense: training its FFN (layers." << t.layer
                << ".mlp.*), as MoE Lab does" << (experts.empty() && !force_route ? "" : "; --experts/--force-route do not apply") << "\n";
    if (list_params) {
      std::cout << train::list_params(model_dir, recipe(t), "train-expert");
      return 0;
    }
    if (data_spec.empty() || out_dir.empty()) fail("train-expert: --data and --out are required");
    train::TrainOptions o;
    o.model_dir = model_dir;
    o.data_spec = data_spec;
    o.tokenizer_dir = tokenizer_dir;
    o.recipe = recipe(t);
    o.recipe_label = "train-expert";
    o.out_dir = out_dir;
    o.device = device;
    o.progress = !no_progress;
    train::Trainer trainer(o);
    auto result = trainer.run();
    std::cout << "trained " << result.steps << " steps; " << result.trainable.size() << " tensors in "
              << (result.out_dir / "trainable.safetensors").string() << "\n";
    return 0;
  }
};

const CommandRegistrar registrar([](CLI::App& app) {
  auto c = std::make_shared<TrainExpertCommand>();
  auto* sub = app.add_subcommand("train-expert", "Train chosen experts of one MoE layer (full or LoRA), MoE Lab style");
  accepts_hub_id(sub->add_option("model", c->model_dir, "model directory"))->required();
  sub->add_option("--layer", c->layer, "layer index (default -1: the last; negative counts from the end); a dense layer trains its FFN");
  sub->add_option("--experts", c->experts, "expert indices in that layer (MoE layers)");
  sub->add_option("--method", c->method, "full | lora")->check(CLI::IsMember({"full", "lora"}))->capture_default_str();
  sub->add_flag("--force-route", c->force_route, "bias the router (+12, selection only) toward the chosen experts");
  sub->add_option("--data", c->data_spec, "data spec");
  sub->add_option("--out", c->out_dir, "run directory");
  accepts_hub_id(sub->add_option("--tokenizer", c->tokenizer_dir, "tokenizer directory (default: the model's)"));
  sub->add_option("--steps", c->steps, "optimiser steps")->capture_default_str();
  sub->add_option("--lr", c->lr, "peak learning rate")->capture_default_str();
  sub->add_option("--batch-size", c->batch_size, "sequences per micro-batch")->capture_default_str();
  sub->add_option("--seq-len", c->seq_len, "tokens per sequence")->capture_default_str();
  sub->add_option("--grad-accum", c->grad_accum, "micro-batches per step")->capture_default_str();
  sub->add_option("--rank", c->rank, "LoRA rank")->capture_default_str();
  sub->add_option("--alpha", c->alpha, "LoRA alpha")->capture_default_str();
  sub->add_option("--seed", c->seed, "seed")->capture_default_str();
  sub->add_option("--threads", c->threads, "torch threads");
  sub->add_option("--device", c->device, "cpu or cuda[:N]")->capture_default_str();
  sub->add_option("--precision", c->precision, "fp32 | bf16 (bf16 model, fp32 masters)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  sub->add_flag("--list-params", c->list_params, "print what would train and exit");
  sub->add_flag("--no-progress", c->no_progress, "no progress output");
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
