// Shared fixture for the training tests: a tiny byte-level BPE tokenizer, a text corpus and a tiny
// random model of any family written by `moeforge init`'s code, plus helpers to run a recipe.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "init/bpe_trainer.h"
#include "init/random_init.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train/trainer.h"

namespace moeforge::test {

// A run's metrics.jsonl, one object per line.
inline std::vector<nlohmann::json> read_metrics(const std::filesystem::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

struct TrainFixture {
  TempDir tmp;
  std::filesystem::path tokenizer, data, cache;

  TrainFixture() {
    tokenizer = tmp / "tok";
    data = tmp / "corpus.txt";
    cache = tmp / "cache";
    static const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "park", "and", "saw",
                                  "bird", "fly", "over", "tree", "red", "blue", "small", "big"};
    std::mt19937 rng(7);
    std::vector<std::string> texts;
    std::ofstream out(data);
    for (int d = 0; d < 60; ++d) {
      std::string doc;
      for (int w = 0; w < 40; ++w) doc += std::string(w ? " " : "") + words[(d * 3 + w * (d % 5 + 1) + rng() % 3) % 20];
      texts.push_back(doc);
      out << doc << "\n\n";
    }
    init::BpeTrainOptions o;
    o.vocab_size = 300;
    init::write_tokenizer(tokenizer, init::train_bpe(texts, o), o);
  }

  // A tiny model of `family` (+ config overrides) with this fixture's tokenizer.
  std::filesystem::path model(const std::string& name, const std::string& family, const nlohmann::json& extra = {},
                              uint64_t seed = 3) {
    init::InitOptions o;
    o.family = family;
    o.config = {{"hidden_size", 32}, {"intermediate_size", 48}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}};
    if (!extra.is_null()) o.config.update(extra);
    o.out = tmp / name;
    o.seed = seed;
    o.std = 0.1;
    o.tokenizer = tokenizer;
    init::init_model(o);
    return o.out;
  }

  // One-phase recipe around `phase` (steps/batch/seq defaults small).
  static nlohmann::json recipe(nlohmann::json phase, const nlohmann::json& top = nlohmann::json::object()) {
    nlohmann::json p = {{"steps", 2}, {"batch_size", 2}, {"seq_len", 16}, {"optimizer", {{"lr", 1e-2}}}};
    p.merge_patch(phase);
    nlohmann::json r = {{"seed", 1}, {"threads", 1}, {"phases", {p}}};
    r.merge_patch(top);
    return r;
  }

  // A corpus of one short document that packs into a single 16-token block: every batch of a run on
  // it is the same, so a loss measured at two steps compares like with like (the full corpus gives
  // each step a different batch, whose loss differs by more than a few steps of training move it).
  std::filesystem::path one_block_data() {
    auto path = tmp / "one_block.txt";
    std::ofstream(path) << "the cat sat on a mat and the dog ran to the park\n";
    return path;
  }

  train::TrainOptions options(const std::filesystem::path& model_dir, const nlohmann::json& recipe, const std::string& out) {
    train::TrainOptions o;
    o.model_dir = model_dir;
    o.data_spec = data.string();
    o.recipe = recipe;
    o.recipe_label = "recipe.json";
    o.out_dir = tmp / out;
    o.progress = false;
    o.data_cache_dir = cache;
    return o;
  }
};

// Base of the suites that share one fixture and one tiny Mixtral, built once per suite.
class TinyMixtralSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fx = new TrainFixture();
    mixtral = fx->model("mixtral", "mixtral");
  }
  static void TearDownTestSuite() {
    delete fx;
    fx = nullptr;
  }
  static inline TrainFixture* fx = nullptr;
  static inline std::filesystem::path mixtral;
};

// Runs `recipe` as run `name` until `stop` global steps (as if killed there), then continues it
// with --resume semantics in a fresh Trainer; returns that Trainer (in-memory model, masters).
inline std::unique_ptr<train::Trainer> interrupted_then_resumed(TrainFixture& fx, const std::filesystem::path& model,
                                                                const nlohmann::json& recipe, const std::string& name,
                                                                int64_t stop) {
  auto o = fx.options(model, recipe, name);
  o.stop_after_steps = stop;
  train::Trainer first(o);
  EXPECT_FALSE(first.run().finished) << name << " was not interrupted";
  train::TrainOptions again;
  again.out_dir = o.out_dir;
  again.resume = true;
  again.progress = false;
  again.data_cache_dir = fx.cache;
  auto second = std::make_unique<train::Trainer>(again);
  EXPECT_TRUE(second->run().finished) << name << " did not finish after --resume";
  return second;
}

inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// canonical name -> tensor copy.
inline std::map<std::string, torch::Tensor> snapshot(model::ModelWeights& w) {
  std::map<std::string, torch::Tensor> out;
  model::for_each_parameter(w, [&](const std::string& n, torch::Tensor& t) { out[n] = t.detach().clone(); });
  return out;
}

}  // namespace moeforge::test
