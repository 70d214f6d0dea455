// `moeforge data prepare|inspect`: open a --data spec with a tokenizer (tokenising into the cache
// once), print the report (domains, blocks, bad records with file:line); inspect also shows blocks.
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "data/batch_iterator.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

// `data` lists bad records itself: any share of them is shown, not refused.
data::DataOptions inspect_options() {
  data::DataOptions o;
  o.max_bad_fraction = 1.0;
  o.warn_bad_records = false;
  return o;
}

struct DataCommandOptions {
  std::string spec, tokenizer, packing = "concat", split = "train", doc_sep, cache_dir, dump;
  data::DataOptions data = inspect_options();
  bool no_assistant_only = false, json = false;
  int show = 0;
};

void add_data_flags(CLI::App* sub, DataCommandOptions& o) {
  sub->add_option("--data", o.spec, "Data spec: file(s), directory, 'a.jsonl:0.4,b.jsonl:0.6' or a mixture .json")->required();
  accepts_hub_id(sub->add_option("--tokenizer", o.tokenizer, "Tokenizer directory (tokenizer.json, tokenizer_config.json)"))->required();
  sub->add_option("--block-size", o.data.block_size, "Tokens per block")->capture_default_str();
  sub->add_option("--validation-fraction", o.data.validation_fraction, "Documents held out per (file, domain)")
      ->capture_default_str();
  sub->add_option("--seed", o.data.seed, "Seed of the validation split and document order")->capture_default_str();
  sub->add_option("--packing", o.packing, "concat | per-document")->capture_default_str();
  sub->add_option("--doc-sep", o.doc_sep, ".txt files: split the whole file on this string (default: one document per line)");
  sub->add_option("--text-field", o.data.records.text_field, "JSONL text field")->capture_default_str();
  sub->add_option("--domain-field", o.data.records.domain_field, "JSONL domain field")->capture_default_str();
  sub->add_flag("--no-assistant-only", o.no_assistant_only, "Chat records: train on every token, not only assistant turns");
  sub->add_flag("--add-bos", o.data.add_bos, "Prepend BOS to every document");
  sub->add_flag("--strict", o.data.records.strict, "Any bad record is a fatal error");
  sub->add_option("--cache-dir", o.cache_dir, "Token cache directory (default $XDG_CACHE_HOME/moeforge)");
  sub->add_flag("--json", o.json, "Print the report as JSON");
}

data::Dataset open_dataset(DataCommandOptions& o) {
  o.data.packing = data::parse_pack_mode(o.packing);
  o.data.assistant_only = !o.no_assistant_only;
  if (!o.doc_sep.empty()) o.data.records.doc_sep = o.doc_sep;
  if (!o.cache_dir.empty()) o.data.cache_dir = o.cache_dir;
  return data::Dataset::open(o.spec, std::filesystem::path(o.tokenizer), o.data);
}

// One block as text, with the non-target tokens in [[...]].
std::string show_block(const data::Dataset& ds, const tokenizer::Tokenizer& tok, data::Split split, size_t index) {
  data::Block b = ds.block(split, index);
  std::string out;
  size_t t = 0;
  while (t < static_cast<size_t>(b.num_real)) {
    size_t end = t;
    while (end < static_cast<size_t>(b.num_real) && b.loss_mask[end] == b.loss_mask[t]) ++end;
    std::string text = tok.decode(std::vector<int32_t>(b.ids.begin() + static_cast<long>(t), b.ids.begin() + static_cast<long>(end)));
    out += b.loss_mask[t] ? text : "[[" + text + "]]";
    t = end;
  }
  return cat("--- ", to_string(split), " block ", index, " (domain ", ds.domains()[static_cast<size_t>(b.domain)],
             ", ", b.num_real, " tokens) ---\n", out, "\n");
}

CommandRegistrar data_command([](CLI::App& app) {
  auto* data_cmd = app.add_subcommand("data", "Prepare (tokenise and cache) and inspect training data");
  data_cmd->require_subcommand(1);

  auto prep = std::make_shared<DataCommandOptions>();
  auto* prepare = data_cmd->add_subcommand("prepare", "Tokenise a --data spec into the cache and print its report");
  add_data_flags(prepare, *prep);
  set_action(prepare, [prep] {
    data::Dataset ds = open_dataset(*prep);
    std::cout << (prep->json ? ds.report().to_json().dump(2) + "\n" : ds.report().to_text());
    return 0;
  });

  auto insp = std::make_shared<DataCommandOptions>();
  auto* inspect = data_cmd->add_subcommand("inspect", "Print the report and decode a few blocks (masked tokens in [[...]])");
  add_data_flags(inspect, *insp);
  inspect->add_option("--show", insp->show, "Blocks to decode")->capture_default_str();
  inspect->add_option("--split", insp->split, "train | validation")->capture_default_str();
  inspect->add_option("--dump", insp->dump, "Write every block of both splits as JSONL {split, index, domain, ids, mask}");
  set_action(inspect, [insp] {
    data::Dataset ds = open_dataset(*insp);
    std::cout << ds.report().to_text();
    if (insp->split != "train" && insp->split != "validation") fail("--split must be train or validation");
    data::Split split = insp->split == "train" ? data::Split::Train : data::Split::Validation;
    tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(insp->tokenizer);
    for (size_t i = 0; i < std::min<size_t>(static_cast<size_t>(insp->show), ds.num_blocks(split)); ++i)
      std::cout << show_block(ds, tok, split, i);
    if (!insp->dump.empty()) {
      std::ofstream out(insp->dump);
      for (data::Split s : {data::Split::Train, data::Split::Validation})
        for (size_t i = 0; i < ds.num_blocks(s); ++i) {
          data::Block b = ds.block(s, i);
          std::vector<int32_t> ids(b.ids.begin(), b.ids.begin() + b.num_real);
          std::vector<int> mask(b.loss_mask.begin(), b.loss_mask.begin() + b.num_real);
          out << nlohmann::json{{"split", to_string(s)}, {"index", i}, {"domain", ds.domains()[static_cast<size_t>(b.domain)]},
                                {"ids", ids}, {"mask", mask}}.dump() << "\n";
        }
      if (!out) fail("cannot write --dump '", insp->dump, "'");
    }
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
