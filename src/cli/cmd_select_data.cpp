// `moeforge select-data`: entropy-based selection of records under a token or sample budget (SmolMoE), written
// as JSONL for training to use; prints the per-group summary.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "common/strings.h"
#include "data/entropy_select.h"
#include "io/atomic_file.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

struct SelectCommandOptions {
  std::string spec, tokenizer, out, group_by, quota = "even_then_fill", summary, score = "length-normalized";
  data::SelectOptions select;
  bool json = false, overwrite = false;
};

CommandRegistrar select_data_command([](CLI::App& app) {
  auto o = std::make_shared<SelectCommandOptions>();
  auto* sub = app.add_subcommand("select-data", "Entropy-based data selection under a token or sample budget (writes JSONL)");
  sub->add_option("--data", o->spec, "Data spec (files, directory, mixture)")->required();
  accepts_hub_id(sub->add_option("--tokenizer", o->tokenizer, "Tokenizer directory or tokenizer.json"))->required();
  auto* tokens = sub->add_option("--budget", o->select.budget_tokens, "Tokens to select")->check(CLI::PositiveNumber);
  auto* samples = sub->add_option("--budget-samples", o->select.budget_samples, "Records to select (instead of --budget)")
                      ->check(CLI::PositiveNumber);
  tokens->excludes(samples);
  sub->add_option("--score", o->score,
                  "length-normalized: H / log2(tokens), so long records are not favoured | raw: SmolMoE's H in bits")
      ->capture_default_str();
  sub->add_option("--out", o->out, "Output .jsonl with the selected records")->required();
  sub->add_option("--group-by", o->group_by, "Comma-separated record fields to group by (e.g. domain,genre)");
  sub->add_option("--quota", o->quota, "even_then_fill | proportional")->capture_default_str();
  sub->add_option("--text-weight", o->select.text_weight, "Weight of H(text) in bits")->capture_default_str();
  sub->add_option("--prompt-weight", o->select.prompt_weight, "Weight of H(prompt) in bits")->capture_default_str();
  sub->add_option("--text-field", o->select.records.text_field, "JSONL text field")->capture_default_str();
  sub->add_option("--prompt-field", o->select.records.prompt_field, "JSONL prompt field")->capture_default_str();
  sub->add_flag("--strict", o->select.records.strict, "Any bad record is a fatal error");
  sub->add_option("--summary", o->summary, "Also write the JSON summary to this file");
  sub->add_flag("--json", o->json, "Print the summary as JSON");
  sub->add_flag("--overwrite", o->overwrite, "Replace an existing --out / --summary");
  set_action(sub, [o] {
    o->select.quota = data::parse_quota_mode(o->quota);
    if (o->select.budget_tokens == 0 && o->select.budget_samples == 0) fail("give --budget TOKENS or --budget-samples N");
    if (o->score != "length-normalized" && o->score != "raw")
      fail("--score '", o->score, "': expected length-normalized or raw");
    o->select.normalize_by_length = o->score == "length-normalized";
    for (const std::string* path : {&o->out, &o->summary}) {  // before any record is read
      std::error_code ec;
      if (!path->empty() && std::filesystem::exists(*path, ec) && !o->overwrite)
        fail(*path, ": already exists; pass --overwrite to replace it, or choose another path");
      if (!path->empty() && std::filesystem::is_directory(*path, ec)) fail(*path, ": is a directory, not a file");
    }
    if (!o->group_by.empty()) o->select.group_by = split(o->group_by, ',');
    tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(o->tokenizer);
    data::BadRecordLog bad;
    std::vector<data::Candidate> candidates = data::score_records(o->spec, tok, o->select, &bad);
    data::SelectionResult result = data::select_by_entropy(candidates, o->select);
    result.bad_records = bad;
    data::write_selection(o->out, result);
    nlohmann::json summary = result.to_json();
    summary["out"] = o->out;
    summary["quota_mode"] = to_string(o->select.quota);
    summary["score"] = o->score;
    if (!o->summary.empty()) {
      write_file_atomic(o->summary, summary.dump(2) + "\n");
    }
    if (o->json) {
      std::cout << summary.dump(2) << "\n";
      return 0;
    }
    std::cout << "selected " << result.selected.size() << " of " << candidates.size() << " records, "
              << result.selected_tokens << " of " << result.available_tokens << " tokens (budget " << result.budget << " "
              << result.budget_unit << "; correlation of score with length " << result.length_score_correlation
              << ") -> " << o->out << "\n";
    for (const auto& g : result.groups)
      std::cout << "  " << (g.group.empty() ? "(all)" : g.group) << ": quota " << g.quota << ", selected "
                << g.selected_records << "/" << g.available_records << " records, " << g.selected_tokens
                << " tokens (" << g.refill_tokens << " by refill)\n";
    if (bad.count) std::cout << "  skipped " << bad.count << " bad records (--strict makes any an error)\n";
    for (const auto& b : bad.examples) std::cout << "  bad record " << b.where() << ": " << b.reason << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
