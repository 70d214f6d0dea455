// The evaluation table of a report: what `moeforge eval --json` prints (src/eval/evaluate.cpp
// to_json plus "model"/"blocks", and "baseline" with --baseline), read from eval*.json files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace moeforge::report {

struct EvalRow {
  std::string metric;
  std::optional<double> model, baseline;  // absent = not measured
};

struct EvalTable {
  std::string name;   // file (and key, for a file holding several results)
  std::string model, baseline_model;
  std::string note;   // what was scored, when the file says
  std::vector<EvalRow> rows;
};

// One table per result in the file: the file itself when it has "loss"; else each entry of
// "models" (`moeforge pipeline` eval.json: base, after surgery, trained, each with "label" and a
// "baseline" = the base); else each member object that has "loss". Throws Error naming the file
// when it is not valid JSON or holds no result.
std::vector<EvalTable> read_eval_tables(const std::filesystem::path& file);

}  // namespace moeforge::report
