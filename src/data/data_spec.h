// `--data SPEC` parsing: which files feed a dataset and with what mixture weight.
//
//   prose.txt                         one file (.txt, .jsonl, optionally .gz or .zst)
//   corpus/                           every .txt/.jsonl(.gz/.zst) file below the directory (sorted)
//   code.jsonl:0.4,prose.jsonl:0.6    weighted mixture (weights need not sum to 1)
//   mix.json                          mixture file: {"sources": [{"path": "code.jsonl", "weight": 0.4,
//                                     "domain": "code"}, ...]} or {"code.jsonl": 0.4, ...};
//                                     relative paths are relative to the mixture file
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace moeforge::data {

enum class SourceFormat { Text, Jsonl, Parquet };  // .txt/.text(.gz/.zst) / .jsonl/.ndjson(.gz/.zst) / .parquet

struct SourceSpec {
  std::filesystem::path path;  // one file
  SourceFormat format = SourceFormat::Jsonl;
  double weight = -1.0;        // mixture weight of the spec entry it came from; < 0 = natural size
  std::string domain;          // domain of records without a `domain` field: the mixture file's
                               // "domain", else the file's stem ("code.jsonl.gz" -> "code")
  std::string entry;           // the spec entry it came from (messages)
};

// Expands a spec into files (directories recursively, sorted). Throws naming the entry for a
// missing path, a bad weight, an unsupported extension, an empty directory, or a mixture where
// only some entries carry weights.
std::vector<SourceSpec> parse_data_spec(const std::string& spec);

// The same spec with every entry's path made absolute against `base_dir` (weights kept), so it
// means the same files from any working directory (run.json, pipeline.json). Entries are split as
// parse_data_spec does: a path that exists wins over a ":weight" reading.
std::string resolve_data_spec(const std::filesystem::path& base_dir, const std::string& spec);

// Format from the file name: .txt/.text(.gz/.zst) -> Text, .jsonl/.ndjson(.gz/.zst) -> Jsonl. Returns false
// when the name is not a data file.
bool format_for_path(const std::filesystem::path& path, SourceFormat& format);

// "code.jsonl.gz" -> "code"; "dir/" -> "dir".
std::string default_domain_name(const std::filesystem::path& path);

}  // namespace moeforge::data
