// SmolMoE-style entropy-based data selection under a token or sample budget (REFERENCE.md section 1):
// score = text_weight * H(token ids of the text) + prompt_weight * H(token ids of the prompt), in
// bits (H of the empirical id distribution within the record); records are grouped by metadata
// fields, each group gets a quota, filled by descending score; the shortfall is refilled from all
// remaining records by global score. `moeforge select-data` writes the chosen records as JSONL.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/records.h"

namespace moeforge::tokenizer {
class Tokenizer;
}

namespace moeforge::data {

enum class QuotaMode : uint8_t {
  EvenThenFill,  // every group gets budget / G (the first budget % G groups one more token)
  Proportional,  // each group gets budget * its tokens / all tokens (largest remainder)
};
QuotaMode parse_quota_mode(const std::string& text);  // "even_then_fill" | "proportional"
const char* to_string(QuotaMode mode);

struct SelectOptions {
  uint64_t budget_tokens = 0;          // total tokens to select (records are whole; never exceeded)
  uint64_t budget_samples = 0;         // or records to select (SmolMoE counts samples); exactly one is set
  // Divide each entropy by log2 of its token count (its maximum), so a score is how varied a record
  // is, not how long: raw H grows with log(length) and otherwise favours long documents.
  bool normalize_by_length = false;
  std::vector<std::string> group_by;   // record fields; "domain" falls back to the file's domain
  QuotaMode quota = QuotaMode::EvenThenFill;
  double text_weight = 0.8;
  double prompt_weight = 0.2;
  RecordOptions records;               // fields, strict, ...
};

// One record, scored. Text records: text = text field, prompt = prompt field. Chat records: text =
// assistant contents, prompt = the other messages' contents (each joined with "\n").
struct Candidate {
  size_t order = 0;          // position in the input (source order, then line): the output order
  std::string source;        // file
  size_t line = 0;
  std::string group;         // group key: the group_by values joined with " | "; "" = one group
  uint64_t tokens = 0;       // cost: text tokens (chat: text + prompt tokens)
  double text_entropy = 0;   // bits
  double prompt_entropy = 0; // bits
  double score = 0;
  nlohmann::ordered_json record;  // what is written out (Text files: {"text": ..., "domain": ...})
};

struct GroupSelection {
  std::string group;
  uint64_t available_tokens = 0, quota = 0, selected_tokens = 0, refill_tokens = 0;
  size_t available_records = 0, selected_records = 0;
};

struct SelectionResult {
  std::vector<Candidate> selected;     // in input order
  std::vector<GroupSelection> groups;  // sorted by group key
  uint64_t budget = 0, selected_tokens = 0, available_tokens = 0;
  std::string budget_unit = "tokens";   // "tokens" | "samples": what budget and the quotas count
  double length_score_correlation = 0;  // Pearson r of (tokens, score) over every candidate
  BadRecordLog bad_records;
  nlohmann::json to_json() const;      // summary (no records)
};

// Pearson correlation of candidates' token counts and scores (0 when either is constant).
double length_score_correlation(const std::vector<Candidate>& candidates);

// Shannon entropy in bits of the id distribution of `ids` (0 for empty input).
double token_entropy_bits(const std::vector<int32_t>& ids);

// Reads and scores every record of `spec`.
std::vector<Candidate> score_records(const std::string& spec, const tokenizer::Tokenizer& tokenizer,
                                     const SelectOptions& options, BadRecordLog* bad = nullptr);

// The selection itself (pure; candidates carry group, tokens and score). Deterministic: ties in
// score break by input order.
SelectionResult select_by_entropy(const std::vector<Candidate>& candidates, const SelectOptions& options);

// Writes the selected records, one JSON object per line, atomically.
void write_selection(const std::filesystem::path& path, const SelectionResult& result);

}  // namespace moeforge::data
