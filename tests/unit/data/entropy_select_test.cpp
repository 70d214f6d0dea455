// Tests of entropy-based selection: entropy in bits, quotas (even_then_fill, proportional), the
// refill by global score, and scoring real records end to end.
#include <gtest/gtest.h>

#include <cmath>

#include "data/entropy_select.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::data {
namespace {
using test::TempDir;
using test::write_text_file;

Candidate make(size_t order, const std::string& group, double score, uint64_t tokens) {
  Candidate c;
  c.order = order;
  c.group = group;
  c.score = score;
  c.tokens = tokens;
  c.record = {{"id", order}};
  return c;
}

std::vector<size_t> picked(const SelectionResult& r) {
  std::vector<size_t> out;
  for (const auto& c : r.selected) out.push_back(c.order);
  return out;
}

TEST(EntropySelect, EntropyBits) {
  EXPECT_DOUBLE_EQ(token_entropy_bits({}), 0.0);
  EXPECT_DOUBLE_EQ(token_entropy_bits({7, 7, 7, 7}), 0.0);
  EXPECT_DOUBLE_EQ(token_entropy_bits({1, 1, 2, 2}), 1.0);
  EXPECT_DOUBLE_EQ(token_entropy_bits({1, 2, 3, 4}), 2.0);
  EXPECT_NEAR(token_entropy_bits({1, 1, 1, 2}), -(0.75 * std::log2(0.75) + 0.25 * std::log2(0.25)), 1e-12);
}

// Group A: c0 (score 5), c1 (3), c2 (1); group B: c3 (4), c4 (0.5); every record 10 tokens.
std::vector<Candidate> hand_made() {
  return {make(0, "A", 5, 10), make(1, "A", 3, 10), make(2, "A", 1, 10), make(3, "B", 4, 10), make(4, "B", 0.5, 10)};
}

TEST(EntropySelect, EvenThenFill) {
  SelectOptions o;
  o.budget_tokens = 35;  // quotas 18 / 17: one record each (c0, c3); refill 10 more: c1 (3) beats c2, c4
  SelectionResult r = select_by_entropy(hand_made(), o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 1, 3}));
  EXPECT_EQ(r.selected_tokens, 30u);
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].quota, 18u);
  EXPECT_EQ(r.groups[1].quota, 17u);
  EXPECT_EQ(r.groups[0].refill_tokens, 10u);
  EXPECT_EQ(r.groups[1].refill_tokens, 0u);
}

TEST(EntropySelect, EvenThenFillRefillsSmallGroups) {
  // Group B only has 20 tokens; with budget 50 (25 each) A gets 2 records by quota, B both of its,
  // and the 10-token shortfall goes to A's last record by global score.
  SelectOptions o;
  o.budget_tokens = 50;
  SelectionResult r = select_by_entropy(hand_made(), o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 1, 2, 3, 4}));
  o.budget_tokens = 45;  // 23 / 22: A {c0,c1}, B {c3,c4}; refill 5 fits nothing
  r = select_by_entropy(hand_made(), o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 1, 3, 4}));
  EXPECT_EQ(r.selected_tokens, 40u);
}

TEST(EntropySelect, Proportional) {
  SelectOptions o;
  o.quota = QuotaMode::Proportional;
  o.budget_tokens = 25;  // A has 30/50 tokens -> quota 15, B 10: c0 and c3; refill 5 fits nothing
  SelectionResult r = select_by_entropy(hand_made(), o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 3}));
  EXPECT_EQ(r.groups[0].quota, 15u);
  EXPECT_EQ(r.groups[1].quota, 10u);
  o.budget_tokens = 40;  // 24 / 16: A {c0, c1}, B {c3}; refill 10 -> c2 (1) beats c4 (0.5)
  r = select_by_entropy(hand_made(), o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(EntropySelect, NoGroupsIsGlobalTopScore) {
  auto candidates = hand_made();
  for (auto& c : candidates) c.group.clear();
  SelectOptions o;
  o.budget_tokens = 30;
  EXPECT_EQ(picked(select_by_entropy(candidates, o)), (std::vector<size_t>{0, 1, 3}));
  o.budget_tokens = 0;
  MOEFORGE_EXPECT_ERROR(select_by_entropy(candidates, o), "--budget");
}

TEST(EntropySelect, ScoresRecordsFromFiles) {
  TempDir dir;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = c - 'a';
  vocab["<eos>"] = 26;
  nlohmann::ordered_json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}},
                              {"pre_tokenizer", nullptr}};
  Tokenizer tok = Tokenizer::from_json_string(j.dump());
  write_text_file(dir / "d.jsonl",
                  "{\"text\": \"aaaa\", \"domain\": \"x\", \"prompt\": \"ab\"}\n"
                  "{\"text\": \"abcd\", \"domain\": \"y\"}\n"
                  "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}, {\"role\": \"assistant\", \"content\": \"aabb\"}]}\n");
  SelectOptions o;
  o.group_by = {"domain"};
  std::vector<Candidate> c = score_records((dir / "d.jsonl").string(), tok, o);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_DOUBLE_EQ(c[0].score, 0.8 * 0.0 + 0.2 * 1.0);
  EXPECT_DOUBLE_EQ(c[1].score, 0.8 * 2.0);
  EXPECT_DOUBLE_EQ(c[2].score, 0.8 * 1.0 + 0.2 * 1.0);
  EXPECT_EQ(c[0].tokens, 4u);
  EXPECT_EQ(c[2].tokens, 6u);  // chat: assistant + prompt tokens
  EXPECT_EQ(c[0].group, "x");
  EXPECT_EQ(c[2].group, "d");  // no domain field: the file's stem
  o.budget_tokens = 10;
  SelectionResult r = select_by_entropy(c, o);
  write_selection(dir / "out.jsonl", r);
  std::string written = test::read_text_file(dir / "out.jsonl");
  EXPECT_NE(written.find("\"text\":\"abcd\""), std::string::npos);
}

TEST(EntropySelect, SampleBudgetCountsRecordsNotTokens) {
  // lengths differ so a token budget and a sample budget pick differently
  std::vector<Candidate> c{make(0, "A", 5, 100), make(1, "A", 3, 10), make(2, "A", 1, 10), make(3, "B", 4, 10),
                           make(4, "B", 0.5, 10)};
  SelectOptions o;
  o.budget_samples = 3;  // even_then_fill: quotas 2 / 1 records: A {c0, c1}, B {c3}
  SelectionResult r = select_by_entropy(c, o);
  EXPECT_EQ(picked(r), (std::vector<size_t>{0, 1, 3}));
  EXPECT_EQ(r.budget, 3u);
  EXPECT_EQ(r.budget_unit, "samples");
  EXPECT_EQ(r.selected_tokens, 120u);
  EXPECT_EQ(r.groups[0].quota, 2u);
  EXPECT_EQ(r.to_json().at("budget_unit"), "samples");
  o.quota = QuotaMode::Proportional;  // A has 3 of 5 records: quota 3 * 3/5 = 1.8 -> 2, B 1.2 -> 1
  r = select_by_entropy(c, o);
  EXPECT_EQ(r.groups[0].quota, 2u);
  EXPECT_EQ(r.groups[1].quota, 1u);
  o.budget_tokens = 10;  // both budgets: refused
  MOEFORGE_EXPECT_ERROR(select_by_entropy(c, o), "exactly one budget");
}

TEST(EntropySelect, LengthScoreCorrelation) {
  std::vector<Candidate> c{make(0, "", 1, 10), make(1, "", 2, 20), make(2, "", 3, 30)};
  EXPECT_NEAR(length_score_correlation(c), 1.0, 1e-12);
  c[2].score = -1;  // scores 1, 2, -1 against 10, 20, 30: sum dt*ds = -20, sum dt^2 = 200, sum ds^2 = 14/3
  EXPECT_NEAR(length_score_correlation(c), -20.0 / std::sqrt(200.0 * 14.0 / 3.0), 1e-12);
  EXPECT_NEAR(length_score_correlation(c), -0.6547, 1e-4);
  c[1].tokens = c[2].tokens = c[0].tokens;  // constant length: no correlation
  EXPECT_EQ(length_score_correlation(c), 0.0);
}

TEST(EntropySelect, LengthNormalizedScoreDoesNotFavourLongRecords) {
  TempDir dir;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (char ch = 'a'; ch <= 'z'; ++ch) vocab[std::string(1, ch)] = ch - 'a';
  nlohmann::ordered_json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}},
                              {"pre_tokenizer", nullptr}};
  Tokenizer tok = Tokenizer::from_json_string(j.dump());
  // "abcd": 4 distinct of 4 (H 2 bits, the maximum); "aabbccddeeffgghh": 8 distinct of 16 (H 3 bits of 4)
  write_text_file(dir / "d.jsonl", "{\"text\": \"abcd\"}\n{\"text\": \"aabbccddeeffgghh\"}\n");
  SelectOptions o;
  auto raw = score_records((dir / "d.jsonl").string(), tok, o);
  EXPECT_LT(raw[0].score, raw[1].score);  // raw H prefers the longer, more repetitive record
  o.normalize_by_length = true;
  auto norm = score_records((dir / "d.jsonl").string(), tok, o);
  EXPECT_DOUBLE_EQ(norm[0].text_entropy, 1.0);
  EXPECT_DOUBLE_EQ(norm[1].text_entropy, 0.75);
  EXPECT_GT(norm[0].score, norm[1].score);
}

TEST(EntropySelect, EmptyOrAllBadInputIsAnErrorWithTheReason) {
  TempDir dir;
  nlohmann::ordered_json j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", nlohmann::ordered_json::array()}}},
                              {"pre_tokenizer", nullptr}};
  Tokenizer tok = Tokenizer::from_json_string(j.dump());
  SelectOptions o;
  write_text_file(dir / "empty.jsonl", "");
  MOEFORGE_EXPECT_ERROR(score_records((dir / "empty.jsonl").string(), tok, o), "no records to select from (the data is empty)");
  write_text_file(dir / "bad.jsonl", "{\"txt\": \"a\"}\nnot json\n");
  MOEFORGE_EXPECT_ERROR(score_records((dir / "bad.jsonl").string(), tok, o), "no records to select from: all 2 were bad (first: ");
  MOEFORGE_EXPECT_ERROR(score_records((dir / "bad.jsonl").string(), tok, o), "bad.jsonl:1: ");
}

}  // namespace
}  // namespace moeforge::data
