// Run directories that never surprise: a run that failed before its first checkpoint is started over
// by the corrected command; a non-empty directory that is not a run is refused; --resume with new
// arguments says what changed and records it; seq_len beyond the model's positions is refused.
#include <gtest/gtest.h>

#include <fstream>

#include "io/checkpoint_store.h"
#include "test_util.h"
#include "train_test_support.h"

namespace moeforge::train {
namespace {

using nlohmann::json;

class RunDir : public test::TinyMixtralSuite {};

TEST_F(RunDir, AFailedStartIsRetriedInTheSameDirectory) {
  const auto bad = fx->tmp / "all_bad.jsonl";
  {
    std::ofstream out(bad);
    for (int i = 0; i < 5; ++i) out << "{\"txt\": \"no text field\"}\n";
  }
  json recipe = test::TrainFixture::recipe({{"select", "router"}});
  auto o = fx->options(mixtral, recipe, "retry");
  o.data_spec = bad.string();
  {
    Trainer t(o);
    MOEFORGE_EXPECT_ERROR(t.run(), "all 5 records are bad");
  }
  ASSERT_TRUE(std::filesystem::exists(o.out_dir / "run.json"));  // written before the data failed
  o.data_spec = fx->data.string();
  testing::internal::CaptureStderr();
  Trainer again(o);
  ASSERT_TRUE(again.run().finished);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("holds a run that stopped before its first checkpoint; starting it over"),
            std::string::npos);
  EXPECT_EQ(read_json_file(o.out_dir / "run.json")["data"].get<std::string>(), fx->data.string());
  // Now it holds a finished run: a fresh run into it is refused.
  Trainer third(o);
  MOEFORGE_EXPECT_ERROR(third.run(), "already holds a training run; continue it with --resume");
}

TEST_F(RunDir, ANonEmptyDirectoryThatIsNotARunIsRefused) {
  const auto dir = fx->tmp / "not-a-run";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "mine\n";
  Trainer t(fx->options(mixtral, test::TrainFixture::recipe({{"select", "router"}}), "not-a-run"));
  MOEFORGE_EXPECT_ERROR(t.run(), "not-a-run: not empty and not a training run (no run.json)");
  EXPECT_TRUE(std::filesystem::exists(dir / "notes.txt"));
}

TEST_F(RunDir, ResumeWithNewArgumentsSaysWhatChangedAndRecordsIt) {
  json recipe = test::TrainFixture::recipe({{"select", "router"}, {"steps", 3}}, {{"checkpoint_every", 1}});
  auto o = fx->options(mixtral, recipe, "override");
  o.stop_after_steps = 1;
  {
    Trainer t(o);
    EXPECT_FALSE(t.run().finished);
  }
  const auto copy = fx->tmp / "corpus_copy.txt";
  std::filesystem::copy_file(fx->data, copy);
  TrainOptions r;
  r.out_dir = o.out_dir;
  r.resume = true;
  r.progress = false;
  r.data_cache_dir = fx->cache;
  r.data_spec = copy.string();
  r.recipe = test::TrainFixture::recipe({{"select", "router"}, {"steps", 4}}, {{"checkpoint_every", 1}});
  testing::internal::CaptureStderr();
  Trainer resumed(r);
  ASSERT_TRUE(resumed.run().finished);
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("with changes to what it recorded:"), std::string::npos) << said;
  EXPECT_NE(said.find("data: " + fx->data.string() + " -> " + copy.string()), std::string::npos) << said;
  EXPECT_NE(said.find("recipe: /phases/0/steps"), std::string::npos) << said;
  EXPECT_EQ(read_json_file(o.out_dir / "run.json")["data"].get<std::string>(), copy.string());
  EXPECT_EQ(read_json_file(o.out_dir / "recipe.json")["phases"][0]["steps"].get<int64_t>(), 4);
  EXPECT_EQ(read_json_file(o.out_dir / "summary.json")["steps"].get<int64_t>(), 4);
}

TEST_F(RunDir, SequencesBeyondTheModelsPositionsAreRefusedBeforeLoading) {
  auto short_model = fx->model("short-positions", "mixtral", {{"max_position_embeddings", 12}});
  Trainer t(fx->options(short_model, test::TrainFixture::recipe({{"select", "router"}}), "too-long"));
  MOEFORGE_EXPECT_ERROR(t.run(), "recipe.json: phase 'phase0' seq_len: 16 tokens exceed");
  EXPECT_FALSE(std::filesystem::exists(fx->tmp / "too-long"));
  json allowed = test::TrainFixture::recipe({{"select", "router"}}, {{"allow_long_seq", true}});
  Trainer ok(fx->options(short_model, allowed, "long-allowed"));
  EXPECT_TRUE(ok.run().finished);
}

TEST_F(RunDir, APhaseTrainsOnItsOwnData) {
  const auto mixed = fx->tmp / "phase_data" / "mixed.txt";
  std::filesystem::create_directories(mixed.parent_path());
  std::filesystem::copy_file(fx->data, mixed);
  const auto bad = fx->tmp / "phase_data" / "bad.jsonl";
  std::ofstream(bad) << "{\"txt\": 1}\n{\"txt\": 2}\n";
  json r = {{"seed", 1}, {"threads", 1}, {"defaults", {{"batch_size", 2}, {"seq_len", 16}, {"optimizer", {{"lr", 1e-2}}}}},
            {"phases", {{{"steps", 1}, {"select", "router"}}, {{"steps", 1}, {"select", "router"}, {"data", "mixed.txt"}}}}};
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(mixed.parent_path());  // a phase's data is relative to where train runs, like --data
  {
    Trainer t(fx->options(mixtral, r, "phase-data"));
    EXPECT_TRUE(t.run().finished);
    r["phases"][1]["data"] = "bad.jsonl";
    Trainer b(fx->options(mixtral, r, "phase-bad-data"));
    MOEFORGE_EXPECT_ERROR(b.run(), bad.string() + "': all 2 records are bad");
  }
  std::filesystem::current_path(cwd);
  const auto stored = read_json_file(fx->tmp / "phase-data" / "recipe.json");
  EXPECT_EQ(stored["phases"][1]["data"].get<std::string>(), mixed.string());  // absolute: --resume works from anywhere
}

}  // namespace
}  // namespace moeforge::train
