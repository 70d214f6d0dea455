// Entropy-based selection: scoring records by token-id entropy and filling group quotas.
#include "data/entropy_select.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "common/strings.h"
#include "data/data_spec.h"
#include "io/atomic_file.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::data {

QuotaMode parse_quota_mode(const std::string& text) {
  if (text == "even_then_fill" || text == "even") return QuotaMode::EvenThenFill;
  if (text == "proportional") return QuotaMode::Proportional;
  fail("unknown --quota '", text, "' (use even_then_fill or proportional)");
}

const char* to_string(QuotaMode mode) { return mode == QuotaMode::EvenThenFill ? "even_then_fill" : "proportional"; }

double token_entropy_bits(const std::vector<int32_t>& ids) {
  if (ids.empty()) return 0.0;
  std::unordered_map<int32_t, uint32_t> counts;
  for (int32_t id : ids) ++counts[id];
  std::vector<uint32_t> sorted;  // sum in a fixed order so the result does not depend on hashing
  for (const auto& [id, c] : counts) sorted.push_back(c);
  std::sort(sorted.begin(), sorted.end());
  double n = static_cast<double>(ids.size()), h = 0.0;
  for (uint32_t c : sorted) {
    double p = c / n;
    h -= p * std::log2(p);
  }
  return h;
}

namespace {

// H / log2(n): 1 when every token of the record differs, 0 for one repeated token or n <= 1.
double normalized(double entropy_bits, size_t tokens) {
  return tokens > 1 ? entropy_bits / std::log2(static_cast<double>(tokens)) : 0.0;
}

std::string content_text(const nlohmann::ordered_json& content) {
  return content.is_string() ? content.get<std::string>() : content.is_null() ? "" : content.dump();
}

std::string field_value(const Record& record, const nlohmann::ordered_json& json, const std::string& field,
                        const RecordOptions& o) {
  if (field == o.domain_field || field == "domain") {
    if (json.is_object() && json.contains(field) && json[field].is_string()) return json[field].get<std::string>();
    if (field == o.domain_field) return record.domain;
  }
  if (!json.is_object() || !json.contains(field) || json[field].is_null()) return "(none)";
  return json[field].is_string() ? json[field].get<std::string>() : json[field].dump();
}

}  // namespace

std::vector<Candidate> score_records(const std::string& spec, const tokenizer::Tokenizer& tok,
                                     const SelectOptions& options, BadRecordLog* bad) {
  std::vector<Candidate> out;
  BadRecordLog skipped;
  for (const SourceSpec& source : parse_data_spec(spec)) {
    RecordReader reader(source, options.records);
    Record r;
    while (reader.next(r)) {
      Candidate c;
      c.order = out.size();
      c.source = source.path.string();
      c.line = r.line;
      std::string text = r.text, prompt = r.prompt;
      if (r.kind == Record::Kind::Chat) {
        text.clear();
        prompt.clear();
        for (const auto& m : r.messages) {
          std::string& into = m.value("role", "") == "assistant" ? text : prompt;
          if (!into.empty()) into += "\n";
          into += content_text(m.contains("content") ? m["content"] : nlohmann::ordered_json());
        }
      }
      std::vector<int32_t> text_ids = tok.encode(text, false);
      std::vector<int32_t> prompt_ids = prompt.empty() ? std::vector<int32_t>{} : tok.encode(prompt, false);
      c.tokens = text_ids.size() + (r.kind == Record::Kind::Chat ? prompt_ids.size() : 0);
      c.text_entropy = token_entropy_bits(text_ids);
      c.prompt_entropy = token_entropy_bits(prompt_ids);
      if (options.normalize_by_length) {
        c.text_entropy = normalized(c.text_entropy, text_ids.size());
        c.prompt_entropy = normalized(c.prompt_entropy, prompt_ids.size());
      }
      c.score = options.text_weight * c.text_entropy + options.prompt_weight * c.prompt_entropy;
      if (!r.raw.empty()) c.record = nlohmann::ordered_json::parse(r.raw);
      else c.record = {{"text", r.text}, {"domain", r.domain}};
      std::vector<std::string> keys;
      for (const auto& field : options.group_by) keys.push_back(field_value(r, c.record, field, options.records));
      for (size_t k = 0; k < keys.size(); ++k) c.group += (k ? " | " : "") + keys[k];
      out.push_back(std::move(c));
    }
    skipped.count += reader.bad_records().count;
    for (const auto& b : reader.bad_records().examples)
      if (skipped.examples.size() < options.records.max_bad_examples) skipped.examples.push_back(b);
  }
  if (out.empty() && skipped.count) {  // the reason, not just "nothing selected"
    const std::string first = skipped.examples.empty()
                                  ? std::string()
                                  : cat(" (first: ", skipped.examples.front().where(), ": ", skipped.examples.front().reason, ")");
    fail(spec, ": no records to select from: all ", skipped.count, " were bad", first);
  }
  if (out.empty()) fail(spec, ": no records to select from (the data is empty)");
  if (bad) {
    bad->count += skipped.count;
    for (const auto& b : skipped.examples)
      if (bad->examples.size() < options.records.max_bad_examples) bad->examples.push_back(b);
  }
  return out;
}

double length_score_correlation(const std::vector<Candidate>& candidates) {
  const double n = static_cast<double>(candidates.size());
  if (n < 2) return 0;
  double mean_t = 0, mean_s = 0;
  for (const auto& c : candidates) {
    mean_t += static_cast<double>(c.tokens) / n;
    mean_s += c.score / n;
  }
  double cov = 0, var_t = 0, var_s = 0;
  for (const auto& c : candidates) {
    const double dt = static_cast<double>(c.tokens) - mean_t, ds = c.score - mean_s;
    cov += dt * ds;
    var_t += dt * dt;
    var_s += ds * ds;
  }
  return var_t > 0 && var_s > 0 ? cov / std::sqrt(var_t * var_s) : 0.0;
}

SelectionResult select_by_entropy(const std::vector<Candidate>& candidates, const SelectOptions& options) {
  const bool in_samples = options.budget_samples > 0;
  if (in_samples == (options.budget_tokens > 0))
    fail("give exactly one budget: --budget (tokens) or --budget-samples (records)");
  // What a record costs against the budget: its tokens, or 1 when the budget counts samples.
  auto cost = [&](size_t i) -> uint64_t { return in_samples ? 1 : candidates[i].tokens; };
  SelectionResult result;
  const uint64_t budget = in_samples ? options.budget_samples : options.budget_tokens;
  result.budget = budget;
  result.budget_unit = in_samples ? "samples" : "tokens";
  std::map<std::string, std::vector<size_t>> groups;  // sorted by key
  uint64_t available_cost = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    groups[candidates[i].group].push_back(i);
    result.available_tokens += candidates[i].tokens;
    available_cost += cost(i);
  }
  auto by_score = [&](size_t a, size_t b) {
    if (candidates[a].score != candidates[b].score) return candidates[a].score > candidates[b].score;
    return candidates[a].order < candidates[b].order;
  };
  // Quotas, in the budget's unit.
  const uint64_t G = groups.size();
  std::vector<uint64_t> quota;
  if (options.quota == QuotaMode::EvenThenFill) {
    for (uint64_t g = 0; g < G; ++g) quota.push_back(budget / G + (g < budget % G ? 1 : 0));
  } else {
    std::vector<std::pair<double, size_t>> rest;
    uint64_t given = 0;
    size_t g = 0;
    for (const auto& [key, members] : groups) {
      uint64_t group_cost = 0;
      for (size_t i : members) group_cost += cost(i);
      double exact = available_cost ? static_cast<double>(budget) * group_cost / available_cost : 0.0;
      quota.push_back(static_cast<uint64_t>(std::floor(exact)));
      given += quota.back();
      rest.push_back({exact - std::floor(exact), g++});
    }
    std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t k = 0; given < budget && k < rest.size(); ++k, ++given) ++quota[rest[k].second];
  }
  // Per-group fill: by descending score, skipping records that would overflow the quota.
  std::vector<bool> chosen(candidates.size(), false);
  uint64_t used = 0;
  size_t g = 0;
  for (auto& [key, members] : groups) {
    std::sort(members.begin(), members.end(), by_score);
    GroupSelection gs;
    gs.group = key;
    gs.quota = quota[g++];
    gs.available_records = members.size();
    uint64_t group_used = 0;
    for (size_t i : members) {
      gs.available_tokens += candidates[i].tokens;
      if (group_used + cost(i) <= gs.quota) {
        chosen[i] = true;
        group_used += cost(i);
        gs.selected_tokens += candidates[i].tokens;
        ++gs.selected_records;
      }
    }
    used += group_used;
    result.groups.push_back(gs);
  }
  // Refill the shortfall from every remaining record by global score.
  std::vector<size_t> rest(candidates.size());
  std::iota(rest.begin(), rest.end(), size_t{0});
  std::sort(rest.begin(), rest.end(), by_score);
  std::map<std::string, size_t> group_index;
  for (size_t k = 0; k < result.groups.size(); ++k) group_index[result.groups[k].group] = k;
  for (size_t i : rest) {
    if (chosen[i] || used + cost(i) > budget) continue;
    chosen[i] = true;
    used += cost(i);
    GroupSelection& gs = result.groups[group_index[candidates[i].group]];
    gs.refill_tokens += candidates[i].tokens;
    gs.selected_tokens += candidates[i].tokens;
    ++gs.selected_records;
  }
  for (size_t i = 0; i < candidates.size(); ++i)
    if (chosen[i]) result.selected.push_back(candidates[i]);
  std::sort(result.selected.begin(), result.selected.end(),
            [](const Candidate& a, const Candidate& b) { return a.order < b.order; });
  for (const Candidate& c : result.selected) result.selected_tokens += c.tokens;
  result.length_score_correlation = length_score_correlation(candidates);
  return result;
}

nlohmann::json SelectionResult::to_json() const {
  nlohmann::json groups_json = nlohmann::json::array();
  for (const auto& g : groups)
    groups_json.push_back({{"group", g.group}, {"available_records", g.available_records},
                           {"available_tokens", g.available_tokens}, {"quota", g.quota},
                           {"selected_records", g.selected_records}, {"selected_tokens", g.selected_tokens},
                           {"refill_tokens", g.refill_tokens}});
  return {{"budget", budget}, {"budget_unit", budget_unit}, {"length_score_correlation", length_score_correlation},
          {"selected_records", selected.size()}, {"selected_tokens", selected_tokens},
          {"available_tokens", available_tokens}, {"groups", groups_json}, {"bad_records", bad_records.to_json()}};
}

void write_selection(const std::filesystem::path& path, const SelectionResult& result) {
  std::string text;
  for (const Candidate& c : result.selected)
    text += c.record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  write_file_atomic(path, text);
}

}  // namespace moeforge::data
