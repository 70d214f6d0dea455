// DataReport rendering: JSON for run directories and a few text lines for the CLI.
#include <iomanip>
#include <sstream>

#include "common/strings.h"
#include "data/dataset.h"

namespace moeforge::data {

nlohmann::json DataReport::to_json() const {
  nlohmann::json sources_json = nlohmann::json::array();
  for (const auto& s : sources)
    sources_json.push_back({{"path", s.path}, {"entry", s.entry}, {"weight", s.weight}, {"cached", s.cached},
                            {"records", s.records}, {"bad_records", s.bad_records}, {"documents", s.documents},
                            {"tokens", s.tokens}, {"train_docs", s.train_docs}, {"validation_docs", s.validation_docs}});
  nlohmann::json domains_json = nlohmann::json::array();
  for (const auto& d : domains)
    domains_json.push_back({{"name", d.name}, {"train_docs", d.train_docs}, {"validation_docs", d.validation_docs},
                            {"train_tokens", d.train_tokens}, {"validation_tokens", d.validation_tokens},
                            {"train_targets", d.train_targets}, {"validation_targets", d.validation_targets},
                            {"train_blocks", d.train_blocks}, {"validation_blocks", d.validation_blocks}});
  nlohmann::json mixture = nlohmann::json::array();
  for (size_t e = 0; e < entries.size(); ++e) mixture.push_back({{"entry", entries[e]}, {"share", entry_share[e]}});
  return {{"block_size", block_size},   {"train_blocks", train_blocks}, {"validation_blocks", validation_blocks},
          {"sources", sources_json},    {"domains", domains_json},      {"mixture", mixture},
          {"bad_records", bad_records.to_json()}};
}

std::string DataReport::to_text() const {
  std::ostringstream out;
  size_t docs = 0, records = 0;
  uint64_t tokens = 0;
  for (const auto& s : sources) docs += s.documents, records += s.records, tokens += s.tokens;
  out << "data: " << sources.size() << " file(s), " << records << " records, " << docs << " documents, "
      << human_count(tokens) << " tokens; " << bad_records.count << " bad records\n";
  out << "blocks of " << block_size << ": " << train_blocks << " train, " << validation_blocks << " validation\n";
  for (const auto& d : domains)
    out << "  domain " << d.name << ": train " << d.train_docs << " docs / " << human_count(d.train_tokens)
        << " tokens / " << d.train_blocks << " blocks; validation " << d.validation_docs << " docs / "
        << human_count(d.validation_tokens) << " tokens / " << d.validation_blocks << " blocks\n";
  if (entries.size() > 1) {
    out << "  mixture:";
    for (size_t e = 0; e < entries.size(); ++e)
      out << (e ? ", " : " ") << entries[e] << " " << std::fixed << std::setprecision(1) << 100.0 * entry_share[e] << "%";
    out << "\n";
  }
  for (const auto& b : bad_records.examples) out << "  bad record " << b.where() << ": " << b.reason << "\n";
  if (bad_records.count > bad_records.examples.size())
    out << "  ... and " << bad_records.count - bad_records.examples.size() << " more bad records\n";
  return out.str();
}

}  // namespace moeforge::data
