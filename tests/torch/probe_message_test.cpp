// The probe's starved-expert message names each expert once and gives advice that fits the phase:
// force the experts when the phase does not; when it does and a stored selection bias outbids the
// force_route_bias, the bias to set; never a setting that is already set.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/model_weights.h"
#include "train/probe_message.h"

namespace moeforge::train {
namespace {

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST(ProbeMessage, EachExpertOnceAndForceAdviceWhenNotForced) {
  model::ModelWeights weights;
  weights.layers.resize(2);
  // w_in and w_out of layer 0 expert 4 both starve: one mention
  std::vector<StarvedExpert> starved{{0, 4, 0}, {0, 5, 1}, {0, 4, 0}, {1, 4, 0}, {0, 5, 1}};
  const std::string msg = starved_experts_message(starved, 64, {}, 12.0, weights);
  EXPECT_EQ(msg, "layer 0: experts 4 (0 of 64 probe tokens), 5 (1 of 64 probe tokens); layer 1: expert 4 (0 of 64 probe "
                 "tokens) get no gradient; set routing.force_route to \"selected\" or \"0:4,0:5,1:4\"");
}

TEST(ProbeMessage, ForcedButOutbidByTheStoredSelectionBias) {
  model::ModelWeights weights;
  weights.layers.resize(1);
  weights.layers[0].score_correction_bias = torch::tensor({50.f, 50.f, 50.f, 50.f, 0.f});  // grow old:50
  const std::string msg = starved_experts_message({{0, 4, 0}}, 32, {{0, {4}}}, 12.0, weights);
  EXPECT_EQ(count(msg, "force_route to"), 0u) << msg;  // force_route is already set: not suggested again
  EXPECT_NE(msg.find("force_route_bias 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("set force_route_bias above 50 (e.g. 62)"), std::string::npos) << msg;
  // forced with enough bias (and still starved): no bias advice that is already satisfied
  const std::string enough = starved_experts_message({{0, 4, 0}}, 32, {{0, {4}}}, 62.0, weights);
  EXPECT_EQ(enough.find("above"), std::string::npos) << enough;
  EXPECT_EQ(count(enough, "force_route to"), 0u) << enough;
}

}  // namespace
}  // namespace moeforge::train
