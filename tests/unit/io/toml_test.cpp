// The TOML reader (toml++ underneath): every value form, tables and arrays of tables, the errors
// the spec asks for by position, and moeforge's own rules by message. (Parity with Python's tomllib: tests/parity/test_toml_parity.py.)
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

// toml++ words the errors; what we pin is the position, the cause, and our own three rules.
TEST(Toml, ErrorsNamePositionAndCause) {
  EXPECT_EQ(error_of("a = 1\na = 2\n"), "t.toml:2:5: Error while parsing key-value pair: cannot redefine existing integer 'a'");
  EXPECT_EQ(error_of("[t]\n[t]\n"), "t.toml:2:1: Error while parsing table header: cannot redefine existing table 't'");
  EXPECT_EQ(error_of("x = 012\n"), "t.toml:1:8: Error while parsing decimal integer: leading zeroes are prohibited");
  EXPECT_EQ(error_of("x = \"\\q\"\n"), "t.toml:1:7: Error while parsing string: unknown escape sequence '\\q'");
  EXPECT_EQ(error_of("x = {a = 1}\nx.b = 2\n"),
            "t.toml:2:1: Error while parsing key-value pair: cannot redefine existing table as dotted key-value pair");
  EXPECT_EQ(error_of("x = [1]\n[[x]]\n"),
            "t.toml:2:1: Error while parsing table header: cannot redefine existing array 'x' as array-of-tables");
  EXPECT_EQ(error_of("[f]\napple.color = 1\n[f.apple]\n"),
            "t.toml:3:1: Error while parsing table header: cannot redefine existing table 'f.apple'");
  EXPECT_EQ(error_of("x = \xff\n"), "t.toml:1:4: Encountered invalid utf-8 sequence");
  for (const char* bad : {"x = \"open\n", "x = 1__0\n", "x = 1 y = 2\n", "x = {a = 1,\n b = 2}\n", "a = 1\n[a]\n",
                          "[a.b]\nz = 1\n[a]\nb.w = 2\n", "x = 1.\n", "x =\n"})
    EXPECT_EQ(error_of(bad).rfind("t.toml:", 0), 0u) << bad;
  // moeforge's own rules, in its own words
  EXPECT_EQ(error_of("x = 1979-05-27\n"), "t.toml:1:5: dates and times are not supported in moeforge configs");
  EXPECT_EQ(error_of("x = [1, {t = 07:32:00}]\n"), "t.toml:1:14: dates and times are not supported in moeforge configs");
  EXPECT_NE(error_of("x = 9223372036854775808\n").find("t.toml:1:24: integer out of the 64-bit range"), std::string::npos);
}

TEST(Toml, FloatsBeyondTheDoubleRangeAreInfinite) {
  auto j = parse("a = 1e400\nb = [-1_0e4_00, +1e+400, 1e-400]\nc = { d = \"\xE2\x82\xAC\", e = -9.9e999 }\n");
  EXPECT_TRUE(std::isinf(j["a"].get<double>()) && j["a"].get<double>() > 0);
  EXPECT_TRUE(std::isinf(j["b"][0].get<double>()) && j["b"][0].get<double>() < 0);
  EXPECT_TRUE(std::isinf(j["b"][1].get<double>()) && j["b"][1].get<double>() > 0);
  EXPECT_EQ(j["b"][2].get<double>(), 0.0);
  EXPECT_TRUE(std::isinf(j["c"]["e"].get<double>()) && j["c"]["e"].get<double>() < 0);
  EXPECT_EQ(error_of("x = 1e400x\n").rfind("t.toml:1:", 0), 0u);  // still a syntax error
}

TEST(Toml, DeepNestingFailsWithAMessage) {
  EXPECT_NE(error_of("x = " + std::string(300, '[')).find("exceeded maximum nested value depth"), std::string::npos);
  std::string inline_tables = "x = ";
  for (int i = 0; i < 300; ++i) inline_tables += "{a = ";
  EXPECT_NE(error_of(inline_tables).find("exceeded maximum nested value depth"), std::string::npos);
  std::string key = "a";
  for (int i = 0; i < 200000; ++i) key += ".a";  // toml++ alone would overflow the stack
  EXPECT_EQ(error_of(key + " = 1\n"), "t.toml:1:256: a key with more than 128 parts");
  EXPECT_NE(error_of("[" + key + "]\n").find("a key with more than 128 parts"), std::string::npos);
  // dots inside strings and comments, and those of floats, are not key parts
  const std::string dots(300, '.');
  auto j = parse("k = \"" + dots + "\" # " + dots + "\nl = '''\n" + dots + "'''\nm = \"\"\"" + dots + "\"\"\"\"\"\n");
  EXPECT_EQ(j["k"], dots);
  EXPECT_EQ(j["l"], dots);
  EXPECT_EQ(j["m"], dots + "\"\"");
  std::string floats = "x = [";
  for (int i = 0; i < 500; ++i) floats += "1.5, ";
  EXPECT_EQ(parse(floats + "]\n")["x"].size(), 500u);
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
