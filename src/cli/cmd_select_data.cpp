// `moeforge select-data`: entropy-based selection of records under a token budget (SmolMoE), written
// as JSONL for training to use; prints the per-group summary.
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "common/strings.h"
#include "data/entropy_select.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

struct SelectCommandOptions {
  std::string spec, tokenizer, out, group_by, quota = "even_then_fill", summary;
  data::SelectOptions select;
  bool json = false;
};

CommandRegistrar select_data_command([](CLI::App& app) {
  auto o = std::make_shared<SelectCommandOptions>();
  auto* sub = app.add_subcommand("select-data", "Entropy-based data selection under a token budget (writes JSONL)");
  sub->add_option("--data", o->spec, "Data spec (files, directory, mixture)")->required();
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer directory or tokenizer.json")->required();
  sub->add_option("--budget", o->select.budget_tokens, "Tokens to select")->required()->check(CLI::PositiveNumber);
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
  set_action(sub, [o] {
    o->select.quota = data::parse_quota_mode(o->quota);
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
    if (!o->summary.empty()) {
      std::ofstream f(o->summary);
      f << summary.dump(2) << "\n";
      if (!f) fail("cannot write --summary '", o->summary, "'");
    }
    if (o->json) {
      std::cout << summary.dump(2) << "\n";
      return 0;
    }
    std::cout << "selected " << result.selected.size() << " of " << candidates.size() << " records, "
              << result.selected_tokens << " of " << result.available_tokens << " tokens (budget " << result.budget
              << ") -> " << o->out << "\n";
    for (const auto& g : result.groups)
      std::cout << "  " << (g.group.empty() ? "(all)" : g.group) << ": quota " << g.quota << ", selected "
                << g.selected_records << "/" << g.available_records << " records, " << g.selected_tokens
                << " tokens (" << g.refill_tokens << " by refill)\n";
    for (const auto& b : bad.examples) std::cout << "  bad record " << b.where() << ": " << b.reason << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
