// Tests of the YAML reader (io/yaml.h): the structures and scalar types mergekit configs use,
// anchors, and errors that name the file, line and column.
#include "io/yaml.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace moeforge {
namespace {

using Json = nlohmann::json;

TEST(Yaml, MergekitConfigShapes) {
  const Json j = parse_yaml(R"(# a mergekit-moe config
base_model: models/base
gate_mode: hidden   # comment after a value
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: models/code
    positive_prompts:
      - "Write a Python function"
      - 'def main():'
    negative_prompts: [poetry, "a sonnet, please"]
    residual_scale: 0.5
  - source_model: models/math
    positive_prompts:
      - >-
        Solve the equation
        for x
    noise_scale: 1e-3
)", "moe.yml");
  EXPECT_EQ(j["base_model"], "models/base");
  EXPECT_EQ(j["gate_mode"], "hidden");
  EXPECT_EQ(j["experts_per_token"], 2);
  EXPECT_TRUE(j["experts_per_token"].is_number_integer());
  ASSERT_EQ(j["experts"].size(), 2u);
  EXPECT_EQ(j["experts"][0]["positive_prompts"], Json::array({"Write a Python function", "def main():"}));
  EXPECT_EQ(j["experts"][0]["negative_prompts"], Json::array({"poetry", "a sonnet, please"}));
  EXPECT_DOUBLE_EQ(j["experts"][0]["residual_scale"].get<double>(), 0.5);
  EXPECT_EQ(j["experts"][1]["positive_prompts"][0], "Solve the equation for x");
  EXPECT_DOUBLE_EQ(j["experts"][1]["noise_scale"].get<double>(), 1e-3);
}

TEST(Yaml, CoreSchemaScalars) {
  const Json j = parse_yaml(R"(a: ~
b: null
c: true
d: False
e: -17
f: 0x1F
g: 0o17
h: .5
i: -1.5e+2
j: .inf
k: -.Inf
l: .nan
m: "12"
n: '3.0'
o: 12abc
p: 1.2.3
q: !!str 5
r:
)", "s.yml");
  EXPECT_TRUE(j["a"].is_null());
  EXPECT_TRUE(j["b"].is_null());
  EXPECT_EQ(j["c"], true);
  EXPECT_EQ(j["d"], false);
  EXPECT_EQ(j["e"], -17);
  EXPECT_EQ(j["f"], 31);
  EXPECT_EQ(j["g"], 15);
  EXPECT_DOUBLE_EQ(j["h"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["i"].get<double>(), -150.0);
  EXPECT_TRUE(std::isinf(j["j"].get<double>()) && j["j"].get<double>() > 0);
  EXPECT_TRUE(std::isinf(j["k"].get<double>()) && j["k"].get<double>() < 0);
  EXPECT_TRUE(std::isnan(j["l"].get<double>()));
  EXPECT_EQ(j["m"], "12");  // quoted: a string
  EXPECT_EQ(j["n"], "3.0");
  EXPECT_EQ(j["o"], "12abc");
  EXPECT_EQ(j["p"], "1.2.3");
  EXPECT_EQ(j["q"], "5");
  EXPECT_TRUE(j["r"].is_null());
}

TEST(Yaml, AnchorsAndAliases) {
  const Json j = parse_yaml("common: &p [x, y]\nfirst: *p\nsecond: {k: *p}\n", "a.yml");
  EXPECT_EQ(j["first"], Json::array({"x", "y"}));
  EXPECT_EQ(j["second"]["k"], Json::array({"x", "y"}));
}

TEST(Yaml, ErrorsNameFileLineAndColumn) {
  MOEFORGE_EXPECT_ERROR(parse_yaml("a: 1\na: 2\n", "d.yml"), "d.yml:2:1: duplicate key 'a'");
  MOEFORGE_EXPECT_ERROR(parse_yaml("a: [1, 2\n", "u.yml"), "u.yml:");
  MOEFORGE_EXPECT_ERROR(parse_yaml("a: *missing\n", "m.yml"), "m.yml:");
  MOEFORGE_EXPECT_ERROR(parse_yaml("a: 1\n---\nb: 2\n", "two.yml"), "two.yml:2:1: more than one document");
  MOEFORGE_EXPECT_ERROR(parse_yaml("a: !custom 1\n", "t.yml"), "t.yml:1:4: unsupported YAML tag '!custom'");
  MOEFORGE_EXPECT_ERROR(read_yaml_file("/nonexistent/moe.yml"), "/nonexistent/moe.yml: cannot read (no such file)");
  EXPECT_TRUE(parse_yaml("", "empty.yml").is_null());
}

}  // namespace
}  // namespace moeforge
