// Pipeline config: defaults, path resolution against the config's directory, and errors that name
// the field (the whole job is validated before any stage runs).
#include <gtest/gtest.h>

#include "common/error.h"
#include "pipeline/pipeline_config.h"

namespace moeforge::pipeline {
namespace {

using nlohmann::json;

json minimal() { return {{"base", "models/base"}, {"data", "corpus/a.jsonl:0.3,/abs/b.txt:0.7"}}; }

std::string error_of(const json& j) {
  try {
    parse_pipeline_config(j, "/jobs/job.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PipelineConfig, ResolvesPathsAgainstTheConfigDirectory) {
  auto c = parse_pipeline_config(minimal(), "/jobs/job.json");
  EXPECT_EQ(c.base, "/jobs/models/base");
  EXPECT_EQ(c.tokenizer, "/jobs/models/base");
  EXPECT_EQ(c.data, "/jobs/corpus/a.jsonl:0.3,/abs/b.txt:0.7");
  EXPECT_EQ(c.eval_data, c.data);
  EXPECT_FALSE(c.stats.has_value());
  EXPECT_FALSE(c.upcycle.has_value());
  EXPECT_TRUE(c.recipe.is_null());
  EXPECT_EQ(c.eval.block_size, 512);
  EXPECT_EQ(c.raw["base"], "/jobs/models/base");
}

TEST(PipelineConfig, StageDefaultsAndInlineRecipe) {
  json j = minimal();
  j["stats"] = true;
  j["surgery"] = {{"grow", {{"clone", "plan"}}}, {"shared_expert", {{"init", "pca_top4"}}}};
  j["recipe"] = {{"phases", json::array()}};
  j["eval"] = {{"block_size", 128}, {"max_blocks", 10}};
  auto c = parse_pipeline_config(j, "/jobs/job.json");
  ASSERT_TRUE(c.stats && c.analyze && c.grow && c.shared_expert);
  EXPECT_EQ(c.stats->tokens, 100000);
  EXPECT_EQ(c.analyze->max_new, 8);
  EXPECT_EQ(c.grow->clone, "plan");
  EXPECT_EQ(surgery::to_string(c.shared_expert->init), "pca_top4");
  EXPECT_DOUBLE_EQ(c.shared_expert->scale, 0.2);
  EXPECT_EQ(c.recipe_label, "/jobs/job.json: recipe");
  EXPECT_EQ(c.eval.block_size, 128);
  EXPECT_EQ(c.eval.max_blocks, 10);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_FALSE(c.raw.contains("device"));
}

TEST(PipelineConfig, ErrorsNameTheField) {
  EXPECT_EQ(error_of({{"data", "x"}}), "/jobs/job.json: base: is required (the dense or MoE model directory to start from)");
  json j = minimal();
  j["surgery"] = {{"upcycle", {{"experts", 1}}}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: surgery.upcycle.experts: must be >= 2");
  j["surgery"] = {{"upcycle", {{"experts", 4}, {"top_k", 5}}}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: surgery.upcycle.top_k: must be <= experts (4)");
  j["surgery"] = {{"upcycle", {{"method", "magic"}}}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: surgery.upcycle.method: 'magic' is not one of copy, noise, drop, granular");
  j["surgery"] = {{"upcycle", {{"experts", 4}}}, {"grow", {{"clone", "0:1"}}}};
  EXPECT_NE(error_of(j).find("surgery.grow: cannot be combined with upcycle"), std::string::npos);
  j["surgery"] = {{"grow", {{"clone", "plan"}}}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: surgery.grow.clone: \"plan\" needs a \"stats\" stage (its analysis chooses the clones)");
  j = minimal();
  j["eval"] = {{"blocksize", 128}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: eval.blocksize: unknown field");
  j = minimal();
  j["stat"] = true;
  EXPECT_EQ(error_of(j), "/jobs/job.json: stat: unknown field");
  j = minimal();
  j["analyze"] = {{"num_new", 2}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: analyze: needs a \"stats\" stage to analyse");
  j = minimal();
  j["eval"] = {{"validation_fraction", 1.5}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: eval.validation_fraction: must be < 1");
  j = minimal();
  j["recipe"] = 3;
  EXPECT_EQ(error_of(j), "/jobs/job.json: recipe: must be a recipe file path or an inline recipe object");
  j = minimal();
  j["stats"] = {{"tokens", "many"}};
  EXPECT_EQ(error_of(j), "/jobs/job.json: stats.tokens: must be an integer");
  j = minimal();
  j["device"] = "tpu";
  EXPECT_EQ(error_of(j), "/jobs/job.json: device: 'tpu' is not cpu or cuda[:N]");
}

}  // namespace
}  // namespace moeforge::pipeline
