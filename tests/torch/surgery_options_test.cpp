// Surgery enum options: every name parses to its value and back, and a bad value is refused with
// one error that names the flag and lists the choices.
#include <gtest/gtest.h>

#include "common/error.h"
#include "surgery/surgery_options.h"
#include "test_util.h"

namespace moeforge::surgery {
namespace {

TEST(SurgeryOptions, NamesRoundTrip) {
  for (const char* n : {"copy", "noise", "drop", "granular"}) EXPECT_STREQ(to_string(parse_upcycle_method(n)), n);
  for (const char* n : {"zero", "normal", "ffn_input", "hidden", "hidden_avg", "cheap_embed", "random", "uniform_random"})
    EXPECT_STREQ(to_string(parse_router_init(n)), n);
  EXPECT_TRUE(router_needs_prompts(RouterInit::CheapEmbed));
  EXPECT_FALSE(router_needs_prompts(RouterInit::UniformRandom));
  for (const char* n : {"average", "base"}) EXPECT_STREQ(to_string(parse_non_ffn(n)), n);
  for (const char* n : {"auto", "split", "none"}) EXPECT_STREQ(to_string(parse_clone_offset(n)), n);
  for (const char* n : {"fixed", "learned", "sigmoid"}) EXPECT_STREQ(to_string(parse_shared_gate(n)), n);
  for (const char* n : {"mean", "random", "top1", "top1_average", "top4_average", "pca_top4", "pca_top12"})
    EXPECT_EQ(to_string(parse_shared_init(n)), n);
  EXPECT_EQ(parse_shared_init("pca_top12").k, 12);
  for (const char* n : {"old:1", "new:12", "old:0.5", "old:-2"}) EXPECT_EQ(to_string(parse_selection_bias(n)), n);
  EXPECT_TRUE(parse_selection_bias("").empty());
  EXPECT_EQ(parse_selection_bias("new:12").target, SelectionBiasSpec::Target::New);
  EXPECT_DOUBLE_EQ(parse_selection_bias("old:50").value, 50.0);
}

TEST(SurgeryOptions, BadValuesListTheChoices) {
  MOEFORGE_EXPECT_ERROR(parse_clone_offset("half"), "--offset: 'half' is not auto, split or none");
  MOEFORGE_EXPECT_ERROR(parse_upcycle_method("clone"), "--method: 'clone' is not copy, noise, drop or granular");
  MOEFORGE_EXPECT_ERROR(parse_router_init("ones", "merge --router"), "merge --router: 'ones' is not zero, normal, ffn_input, hidden, hidden_avg, cheap_embed, random or uniform_random");
  MOEFORGE_EXPECT_ERROR(parse_non_ffn("first"), "--non-ffn: 'first' is not average or base");
  MOEFORGE_EXPECT_ERROR(parse_shared_gate("tanh"), "--gate: 'tanh' is not fixed, learned or sigmoid");
  MOEFORGE_EXPECT_ERROR(parse_shared_init("top2"), "--init: 'top2' is not mean, random, top1, top1_average, top4_average or pca_topK");
  MOEFORGE_EXPECT_ERROR(parse_shared_init("pca_topx"), "pca_topK needs a number K");
  MOEFORGE_EXPECT_ERROR(parse_selection_bias("mid:1"), "--router-bias: 'mid:1' is not old:VALUE or new:VALUE");
  MOEFORGE_EXPECT_ERROR(parse_selection_bias("old:abc"), "--router-bias: 'abc' is not a number");
  MOEFORGE_EXPECT_ERROR(parse_selection_bias("old:1x"), "'1x' is not a number");
}

}  // namespace
}  // namespace moeforge::surgery
