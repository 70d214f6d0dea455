// stats + analyze on a tiny Mixtral whose layer-1 router is set by hand: "code" tokens (their own
// id range) carry a large embedding component that only expert 3's router row reads, so expert 3
// takes every code token. Stats must match counts recomputed from forward outputs; analyze must
// clone expert 3, put it in the ESFT "code" set and rank it first by PCA importance.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <random>

#include "arch/plan.h"
#include "data/dataset.h"
#include "model/transformer.h"
#include "stats/analysis_plots.h"
#include "stats/analyze_job.h"
#include "stats/calibration.h"
#include "stats/prob_dump.h"
#include "stats/stats_job.h"
#include "support/tiny_checkpoint.h"
#include "test_util.h"
#include "train/selectors.h"
#include "train/trainable.h"

namespace moeforge::stats {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr int kH = 32, kCodeExpert = 3, kDim = 3;
const std::string kProse = "abcdefghijklmnopqrstuvwxyz ";  // ids 1..27
const std::string kCode = "0123456789{}()=;+-*/<>[]";     // ids 28..51

Json tokenizer_json() {
  Json vocab = {{"<eos>", 0}};
  int id = 1;
  for (char c : kProse + kCode) vocab[std::string(1, c)] = id++;
  Json eos = {{"id", 0}, {"content", "<eos>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
              {"normalized", false}, {"special", true}};
  return {{"version", "1.0"}, {"added_tokens", {eos}}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
          {"post_processor", nullptr}, {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}}};
}

bool is_code(int id) { return id >= 28 && id < 28 + static_cast<int>(kCode.size()); }

class StatsEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const fs::path model = *dir_ / "model";
    test::write_tiny_checkpoint(model, test::tiny_config("mixtral"), 7, 0.05f, [](const std::string& name, std::vector<float>& v) {
      if (name == "model.embed_tokens.weight") {
        for (int id = 0; id < 97; ++id) v[id * kH + kDim] = is_code(id) ? 3.0f : 0.0f;
        return true;
      }
      if (name == "model.layers.1.block_sparse_moe.gate.weight") {
        for (int e = 0; e < 4; ++e) v[e * kH + kDim] = e == kCodeExpert ? 0.4f : 0.0f;
        return true;
      }
      return false;
    });
    test::write_text_file(model / "tokenizer.json", tokenizer_json().dump());
    test::write_text_file(model / "tokenizer_config.json", R"({"eos_token": "<eos>"})");
    std::mt19937 rng(3);
    std::string jsonl;
    for (int doc = 0; doc < 60; ++doc) {
      const bool code = doc % 2 == 0;
      const std::string& chars = code ? kCode : kProse;
      std::string text;
      for (int i = 0; i < 30 + static_cast<int>(rng() % 30); ++i) text += chars[rng() % chars.size()];
      jsonl += Json{{"text", text}, {"domain", code ? "code" : "prose"}}.dump() + "\n";
    }
    test::write_text_file(*dir_ / "data.jsonl", jsonl);
    options().model = model;
    options().data = (*dir_ / "data.jsonl").string();
    options().out = *dir_ / "stats";
    options().tokens = 1 << 30;  // all of it
    options().block_size = 32;
    options().batch_size = 4;
    options().dump_probs = true;
    options().loss_delta = true;
    options().loss_delta_tokens = 64;
    options().progress = false;
    stats_ = new RouterStats(run_stats(options()));
  }
  static void TearDownTestSuite() {
    delete stats_;
    delete dir_;
  }
  static StatsOptions& options() {
    static StatsOptions o;
    return o;
  }
  static test::TempDir* dir_;
  static RouterStats* stats_;
};
test::TempDir* StatsEndToEnd::dir_ = nullptr;
RouterStats* StatsEndToEnd::stats_ = nullptr;

TEST_F(StatsEndToEnd, CountsMatchForwardOutputsExactly) {
  const StatsOptions& o = options();
  auto model = model::Transformer::load(o.model);
  data::DataOptions d;
  d.block_size = o.block_size;
  d.validation_fraction = 0.0;
  d.seed = o.seed;
  auto ds = data::Dataset::open(o.data, o.model, d);
  auto order = ds.epoch_order(data::Split::Train, 0, o.seed, true);
  const int64_t E = 4, T = o.block_size;
  std::vector<std::vector<int64_t>> counts(2, std::vector<int64_t>(E)), code(2, std::vector<int64_t>(E)), co(2, std::vector<int64_t>(E * E));
  std::vector<std::vector<double>> gate(2, std::vector<double>(E));
  int64_t tokens = 0, code_chars = 0, code_chars_to_expert = 0;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < order.size(); i += 4) {
    std::vector<data::Block> blocks;
    std::vector<int64_t> ids;
    for (size_t j = i; j < std::min(order.size(), i + 4); ++j) {
      blocks.push_back(ds.block(data::Split::Train, order[j]));
      ids.insert(ids.end(), blocks.back().ids.begin(), blocks.back().ids.end());
    }
    auto out = model->forward(torch::tensor(ids).view({static_cast<int64_t>(blocks.size()), T}));
    for (size_t li = 0; li < 2; ++li) {
      auto picks = out.routing[li].routing.expert_ids.contiguous();
      auto w = out.routing[li].routing.weights.contiguous();
      for (size_t b = 0; b < blocks.size(); ++b)
        for (int64_t t = 0; t < blocks[b].num_real; ++t) {
          const int64_t row = static_cast<int64_t>(b) * T + t;
          if (li == 1) code_chars += is_code(blocks[b].ids[t]);
          for (int64_t k = 0; k < 2; ++k) {
            const int64_t e = picks[row][k].item<int64_t>();
            ++counts[li][e];
            gate[li][e] += w[row][k].item<double>();
            if (ds.domains()[blocks[b].domain] == "code") ++code[li][e];
            if (li == 1 && is_code(blocks[b].ids[t])) code_chars_to_expert += e == kCodeExpert;
            for (int64_t k2 = 0; k2 < 2; ++k2) ++co[li][e * E + picks[row][k2].item<int64_t>()];
          }
        }
    }
    for (const auto& b : blocks) tokens += b.num_real;
  }
  ASSERT_EQ(stats_->tokens, tokens);
  ASSERT_EQ(stats_->layers.size(), 2u);
  const RouterStats reread = read_stats(o.out);  // through stats.json
  const size_t code_index = std::find(reread.domains.begin(), reread.domains.end(), "code") - reread.domains.begin();
  ASSERT_LT(code_index, reread.domains.size());
  for (size_t li = 0; li < 2; ++li)
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(reread.layers[li].counts[e], counts[li][e]) << "layer " << li << " expert " << e;
      EXPECT_EQ(reread.layers[li].domain_counts[code_index][e], code[li][e]);
      EXPECT_NEAR(reread.layers[li].gate_sum[e], gate[li][e], 1e-3);
      for (int64_t e2 = 0; e2 < E; ++e2) EXPECT_EQ(reread.layers[li].coactivation[e * E + e2], co[li][e * E + e2]);
    }
  // The hand-set router: every code character picks expert 3 in layer 1 (EOS, shared by both
  // domains, routes like prose), so expert 3 holds more than half of the code domain's picks.
  EXPECT_GT(code_chars, 500);
  EXPECT_EQ(code_chars_to_expert, code_chars);
  EXPECT_GE(reread.layers[1].domain_counts[code_index][kCodeExpert], code_chars);
  double hist = 0;
  for (double v : reread.layers[1].entropy_hist) hist += v;
  EXPECT_EQ(hist, tokens);
  EXPECT_EQ(reread.layers[1].loss_delta.size(), 4u);
  EXPECT_GT(reread.loss_delta_tokens, 0);
}

TEST_F(StatsEndToEnd, ProbabilityDumpHasEveryToken) {
  auto probs = read_prob_dump(options().out / "router_probs.safetensors");  // [T, L, E]
  ASSERT_EQ(probs.sizes(), (std::vector<int64_t>{stats_->tokens, 2, 4}));
  EXPECT_LT((probs.sum(-1) - 1).abs().max().item<double>(), 5e-3);
  // mean probability from the dump equals stats' mean_prob up to fp16 rounding
  const auto mean = probs.mean(0);
  for (int64_t e = 0; e < 4; ++e)
    EXPECT_NEAR(mean[1][e].item<double>(), stats_->layers[1].prob_sum[e] / static_cast<double>(stats_->tokens), 1e-3);
  EXPECT_TRUE(fs::exists(options().out / "router_probs.npz"));
}

TEST_F(StatsEndToEnd, AnalyzeChoosesTheCodeExpert) {
  for (const char* source : {"dump", "moments"}) {
    AnalyzeOptions o;
    o.stats_dir = options().out;
    o.esft_domain = "code";
    o.pca_source = source;
    Analysis a = analyze(o);
    ASSERT_EQ(a.pca_source, source);
    EXPECT_EQ(a.clones.clone.at(1).front(), kCodeExpert);
    EXPECT_EQ(a.esft.at("code").at(1), (std::vector<int64_t>{kCodeExpert}));
    EXPECT_EQ(rank_desc(a.pca[1].importance).front(), kCodeExpert) << source;
    EXPECT_EQ(rank_desc(a.layers[1].usage).front(), kCodeExpert);
    Json plan = plan_json(a, o);
    EXPECT_EQ(plan["esft"]["experts"]["1"], Json::array({kCodeExpert}));
    EXPECT_EQ(plan["shared_expert"]["top1"]["1"], Json::array({kCodeExpert}));
    // The surgery engineer's reader accepts the plan for this model and rejects it for another.
    SurgeryPlan parsed = parse_plan(plan, "plan.json");
    ModelSpec spec = model::Transformer::load(options().model)->spec();
    check_plan_matches(parsed, spec);
    EXPECT_EQ(parsed.clone.at(1).front(), kCodeExpert);
    Json other = plan;
    other["model"]["num_experts"] = 8;
    MOEFORGE_EXPECT_ERROR(check_plan_matches(parse_plan(other, "plan.json"), spec), "different model");
    // Training's experts=plan:esft selectors read the same sets.
    auto model = model::Transformer::load(options().model);
    train::SelectorContext ctx{&spec, train::describe_parameters(spec), nullptr, &plan, "plan.json"};
    for (const char* term : {"experts=plan:esft", "experts=plan:esft:code"}) {
      auto selection = train::resolve_selection({term}, ctx, "r.json");
      ASSERT_TRUE(selection.count("layers.1.experts.w_in")) << term;
      EXPECT_EQ(train::selected_units(selection.at("layers.1.experts.w_in")), (std::vector<int64_t>{kCodeExpert})) << term;
      for (const auto& [name, mask] : selection) {  // every layer: exactly the plan's set
        const std::string layer = name.substr(7, name.find('.', 7) - 7);
        EXPECT_EQ(Json(train::selected_units(mask)), plan["esft"]["experts"][layer]) << name;
      }
    }
    MOEFORGE_EXPECT_ERROR(train::resolve_selection({"experts=plan:esft:poetry"}, ctx, "r.json"), "no ESFT set for domain 'poetry'");
    ctx.analysis_plan = nullptr;
    MOEFORGE_EXPECT_ERROR(train::resolve_selection({"experts=plan:esft"}, ctx, "r.json"), "needs an analyze plan");
  }
}

TEST_F(StatsEndToEnd, PlotsAreWritten) {
  AnalyzeOptions o;
  o.stats_dir = options().out;
  Analysis a = analyze(o);
  auto files = write_plots(a, *dir_ / "plots", 1);
  ASSERT_EQ(files.size(), 4u);
  for (const auto& f : files) {
    const std::string svg = test::read_text_file(f);
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_GT(std::count(svg.begin(), svg.end(), '\n'), 20) << f;
  }
  MOEFORGE_EXPECT_ERROR(write_plots(a, *dir_ / "plots", 7), "not a MoE layer");
}

TEST_F(StatsEndToEnd, RefusesToOverwriteAndCalibrates) {
  StatsOptions o = options();
  o.dump_probs = o.loss_delta = false;
  MOEFORGE_EXPECT_ERROR(run_stats(o), "--overwrite");
  o.out = *dir_ / "calibrated";
  o.calibrate = true;
  o.tokens = 200;
  RouterStats s = run_stats(o);
  EXPECT_EQ(s.tokens, 200);
  EXPECT_TRUE(s.calibrated);
  // The greedy sample is at least as close to the data's token distribution as the plain one
  // (same number of blocks from the front of the shuffled order; the pool is all the blocks here).
  data::DataOptions d;
  d.block_size = o.block_size;
  d.validation_fraction = 0.0;
  auto ds = data::Dataset::open(o.data, o.model, d);
  ASSERT_LE(ds.num_blocks(data::Split::Train), 256u);
  auto order = ds.epoch_order(data::Split::Train, 0, o.seed, true);
  std::vector<double> pool(97, 0.0), plain(97, 0.0);
  for (size_t i = 0; i < order.size(); ++i) {
    data::Block b = ds.block(data::Split::Train, order[i]);
    for (int32_t t = 0; t < b.num_real; ++t) {
      pool[b.ids[t]] += 1;
      if (i < static_cast<size_t>(s.blocks)) plain[b.ids[t]] += 1;
    }
  }
  EXPECT_LE(s.calibration_kl, unigram_kl(plain, pool) + 1e-12);
}

}  // namespace
}  // namespace moeforge::stats
