// JsonFields: the strict reader recipes and pipeline jobs share. Every error names the document,
// the field path and what is wrong; unknown fields are errors; defaults apply only when absent.
#include "io/json_fields.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/error.h"
#include "test_util.h"

namespace moeforge {
namespace {

using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JsonFields, ReadsTypedValuesWithDefaults) {
  json j = {{"lr", 0.5}, {"steps", 7}, {"flag", true}, {"name", "x"}, {"seed", 3}, {"absent_null", nullptr},
            {"opt", {{"beta", 0.9}}}};
  JsonFields f(j, "r.json", "");
  EXPECT_DOUBLE_EQ(f.number("lr", 1.0), 0.5);
  EXPECT_DOUBLE_EQ(f.number("missing", 1.5), 1.5);
  EXPECT_EQ(f.integer("steps", 1, 1), 7);
  EXPECT_TRUE(f.boolean("flag", false));
  EXPECT_EQ(f.string("name", ""), "x");
  EXPECT_EQ(f.unsigned_integer("seed", 0), 3u);
  EXPECT_EQ(f.integer("absent_null", 4), 4);  // null means "use the default"
  JsonFields opt = f.object("opt");
  EXPECT_DOUBLE_EQ(opt.number("beta", 0.0), 0.9);
  opt.finish();
  f.finish();
}

TEST(JsonFields, ErrorsNameDocumentPathAndProblem) {
  json j = {{"opt", {{"lr", "fast"}, {"steps", 0}, {"kind", "sgd"}, {"typo", 1}}}, {"seed", -1}};
  EXPECT_EQ(error_of([&] { JsonFields(j, "r.json", "").object("opt").number("lr", 1); }), "r.json: opt.lr: must be a number");
  EXPECT_EQ(error_of([&] { JsonFields(j, "r.json", "").object("opt").integer("steps", 1, 1); }), "r.json: opt.steps: must be >= 1");
  EXPECT_EQ(error_of([&] { JsonFields(j, "r.json", "").object("opt").number("steps", 1, 0.0, true); }),
            "r.json: opt.steps: must be > 0");
  EXPECT_EQ(error_of([&] { JsonFields(j, "r.json", "").object("opt").choice("kind", "adamw", {"adamw", "adafactor"}); }),
            "r.json: opt.kind: 'sgd' is not one of adamw, adafactor");
  EXPECT_EQ(error_of([&] { JsonFields(j, "r.json", "").unsigned_integer("seed", 0); }),
            "r.json: seed: must be a non-negative integer");
  EXPECT_EQ(error_of([&] {
              JsonFields f(j, "r.json", "");
              JsonFields opt = f.object("opt");
              opt.number("steps", 1);
              opt.string("kind", "");
              opt.raw("lr");
              opt.finish();
            }),
            "r.json: opt.typo: unknown field");
  // The top-level object is named by the reader's root word.
  EXPECT_EQ(error_of([&] { JsonFields(json::array(), "job.json", "", "the config"); }), "job.json: the config: must be an object");
  EXPECT_EQ(error_of([&] { JsonFields(json(3), "r.json", ""); }), "r.json: recipe: must be an object");
}

}  // namespace
}  // namespace moeforge
