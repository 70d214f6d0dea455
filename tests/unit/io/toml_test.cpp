// The TOML reader: every value form, tables and arrays of tables, and the errors the spec asks for,
// each checked by message and position. (Parity with Python's tomllib: tests/parity/test_toml_parity.py.)
#include "io/toml.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace moeforge {
namespace {

using nlohmann::json;

json parse(const std::string& text) { return parse_toml(text, "t.toml"); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Toml, ValuesOfEveryKind) {
  auto j = parse(R"(# a recipe
name = "three \"phase\"\tx\u00e9\U0001F600"
lit = 'C:\path\no escape'
int = +1_000
neg = -17
hex = 0xDEAD_beef
oct = 0o755
bin = 0b1101
flt = 6.626e-34
flt2 = -1_0.5E+2
zero = -0.0
pinf = +inf
ninf = -inf
nan = nan
yes = true
no = false
empty = ""
)");
  EXPECT_EQ(j["name"], "three \"phase\"\tx\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(j["lit"], "C:\\path\\no escape");
  EXPECT_EQ(j["int"], 1000);
  EXPECT_EQ(j["neg"], -17);
  EXPECT_EQ(j["hex"], 0xDEADBEEF);
  EXPECT_EQ(j["oct"], 0755);
  EXPECT_EQ(j["bin"], 13);
  EXPECT_TRUE(j["int"].is_number_integer());
  EXPECT_DOUBLE_EQ(j["flt"].get<double>(), 6.626e-34);
  EXPECT_DOUBLE_EQ(j["flt2"].get<double>(), -1050.0);
  EXPECT_TRUE(j["zero"].is_number_float());
  EXPECT_TRUE(std::signbit(j["zero"].get<double>()));
  EXPECT_TRUE(std::isinf(j["pinf"].get<double>()) && j["pinf"].get<double>() > 0);
  EXPECT_TRUE(j["ninf"].get<double>() < 0);
  EXPECT_TRUE(std::isnan(j["nan"].get<double>()));
  EXPECT_EQ(j["yes"], true);
  EXPECT_EQ(j["no"], false);
  EXPECT_EQ(j["empty"], "");
}

TEST(Toml, MultilineStrings) {
  auto j = parse("a = \"\"\"\nline one\nline \\\"two\\\"\"\"\"\n"
                 "b = \"\"\"\\\n   folded \\\n   text\"\"\"\n"
                 "c = '''\nraw \\n '' here'''\n"
                 "d = \"\"\"\"\"quoted\"\"\"\"\"\n");
  EXPECT_EQ(j["a"], "line one\nline \"two\"");
  EXPECT_EQ(j["b"], "folded text");
  EXPECT_EQ(j["c"], "raw \\n '' here");
  EXPECT_EQ(j["d"], "\"\"quoted\"\"");
}

TEST(Toml, TablesDottedKeysAndArraysOfTables) {
  auto j = parse(R"(
seed = 1
defaults.optimizer.lr = 1e-4
"quoted key".x = 1
site."google.com" = true

[[phases]]
name = "new-experts"
select = ["new_experts", "router"]
routing = { force_route = "selected", force_route_bias = 12.0 }

[phases.optimizer]
lr = 3e-4

[[phases]]
name = "router"
steps = 100
lora.rank = 8

[a.b.c]
x = 1
[a]
y = 2
nested = [[1, 2], ["x"], [], [{k = 1}],]
)");
  EXPECT_EQ(j["seed"], 1);
  EXPECT_DOUBLE_EQ(j["defaults"]["optimizer"]["lr"].get<double>(), 1e-4);
  EXPECT_EQ(j["quoted key"]["x"], 1);
  EXPECT_EQ(j["site"]["google.com"], true);
  ASSERT_EQ(j["phases"].size(), 2u);
  EXPECT_EQ(j["phases"][0]["select"], json::array({"new_experts", "router"}));
  EXPECT_EQ(j["phases"][0]["routing"]["force_route"], "selected");
  EXPECT_DOUBLE_EQ(j["phases"][0]["optimizer"]["lr"].get<double>(), 3e-4);
  EXPECT_EQ(j["phases"][1]["steps"], 100);
  EXPECT_EQ(j["phases"][1]["lora"]["rank"], 8);
  EXPECT_FALSE(j["phases"][1].contains("optimizer"));
  EXPECT_EQ(j["a"]["b"]["c"]["x"], 1);
  EXPECT_EQ(j["a"]["y"], 2);
  EXPECT_EQ(j["a"]["nested"], json::parse(R"([[1, 2], ["x"], [], [{"k": 1}]])"));
}

TEST(Toml, ErrorsNamePositionAndCause) {
  EXPECT_EQ(error_of("a = 1\na = 2\n"), "t.toml:2:1: 'a' is defined twice");
  EXPECT_EQ(error_of("[t]\n[t]\n"), "t.toml:2:1: table [t] is defined twice");
  EXPECT_EQ(error_of("x = \"open\n"), "t.toml:1:10: unterminated string");
  EXPECT_EQ(error_of("x = 1979-05-27\n"), "t.toml:1:5: dates and times are not supported in moeforge configs");
  EXPECT_EQ(error_of("x = 012\n"), "t.toml:1:5: leading zeros are not allowed in a number");
  EXPECT_EQ(error_of("x = 1__0\n"), "t.toml:1:7: '_' must sit between two digits");
  EXPECT_EQ(error_of("x = 9223372036854775808\n"), "t.toml:1:5: integer out of the 64-bit range");
  EXPECT_EQ(error_of("x = \"\\q\"\n"), "t.toml:1:6: unknown escape sequence in a string");
  EXPECT_EQ(error_of("x = 1 y = 2\n"), "t.toml:1:7: expected the end of the line after a value or header");
  EXPECT_EQ(error_of("x = {a = 1,\n b = 2}\n"), "t.toml:1:12: expected a key");
  EXPECT_EQ(error_of("x = {a = 1}\nx.b = 2\n"), "t.toml:2:1: cannot add 'x.b' to an inline table or value array");
  EXPECT_EQ(error_of("x = [1]\n[[x]]\n"), "t.toml:2:1: [[x]] cannot extend a value array or inline table");
  EXPECT_EQ(error_of("[f]\napple.color = 1\n[f.apple]\n"), "t.toml:3:1: table [f.apple] is defined twice");
  EXPECT_EQ(error_of("[a.b]\nz = 1\n[a]\nb.w = 2\n"), "t.toml:4:1: cannot define table 'a.b' again with dotted keys");
  EXPECT_EQ(error_of("a = 1\n[a]\n"), "t.toml:2:1: 'a' is not a table ('a' already holds a value)");
  EXPECT_EQ(error_of("x = \xff\n"), "t.toml:1:5: invalid UTF-8");
  EXPECT_EQ(error_of("x = 1.\n"), "t.toml:1:7: expected digits after the decimal point");
  EXPECT_EQ(error_of("x =\n"), "t.toml:1:4: expected a value (string, number, boolean, array or inline table)");
}

TEST(Toml, DeepNestingFailsWithAMessage) {
  EXPECT_EQ(error_of("x = " + std::string(200, '[')), "t.toml:1:133: values nested more than 128 levels deep");
  std::string inline_tables = "x = ";
  for (int i = 0; i < 200; ++i) inline_tables += "{a = ";
  EXPECT_NE(error_of(inline_tables).find("values nested more than 128 levels deep"), std::string::npos);
  std::string key = "a";
  for (int i = 0; i < 200; ++i) key += ".a";
  EXPECT_NE(error_of(key + " = 1\n").find("a key with more than 128 parts"), std::string::npos);
  EXPECT_EQ(parse("x = " + std::string(100, '[') + std::string(100, ']') + "\n")["x"].dump(), std::string(100, '[') + std::string(100, ']'));
}

TEST(Toml, SubTablesOfDottedTablesAndNewArrayElements) {
  auto j = parse("[f]\napple.color = 1\napple.taste.sweet = true\n[f.apple.texture]\nsmooth = true\n"
                 "[[p]]\n[p.x]\nv = 1\n[[p]]\n[p.x]\nv = 2\n");
  EXPECT_EQ(j["f"]["apple"]["taste"]["sweet"], true);
  EXPECT_EQ(j["f"]["apple"]["texture"]["smooth"], true);
  EXPECT_EQ(j["p"][0]["x"]["v"], 1);
  EXPECT_EQ(j["p"][1]["x"]["v"], 2);
}

}  // namespace
}  // namespace moeforge
