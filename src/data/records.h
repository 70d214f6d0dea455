// Reading documents ("records") from one data file: .txt (a document per non-empty line, or the
// whole file split on a separator), JSONL ({"text": ...} or chat {"messages": [...]}, with an
// optional domain) and Parquet (the same fields as columns; a row's number is its "line"). Bad records are counted with file:line and skipped, or fatal when strict.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/data_spec.h"

namespace moeforge::data {

struct RecordOptions {
  std::string text_field = "text";          // JSONL: field holding a document's text
  std::string messages_field = "messages";  // JSONL: field holding a chat [{"role", "content"}, ...]
  std::string domain_field = "domain";      // JSONL: optional field naming the record's domain
  std::string prompt_field = "prompt";      // JSONL: optional prompt text (entropy selection)
  std::optional<std::string> doc_sep;       // .txt: split the whole file on this; unset = per line
  bool strict = false;                      // first bad record throws "file:line: reason"
  size_t max_bad_examples = 20;             // bad records kept (with file:line) for the report
};

struct Record {
  enum class Kind { Text, Chat };
  Kind kind = Kind::Text;
  std::string text;                                  // Text records
  nlohmann::ordered_json messages;                   // Chat records: the messages array
  std::string domain;                                // record's domain field, else the source's
  std::string prompt;                                // prompt_field when present (may be empty)
  size_t line = 0;                                   // 1-based line where the record starts (Parquet: row)
  std::string raw;                                   // JSONL: the line as read; Parquet: the row as JSON; Text: empty
};

struct BadRecord {
  std::string file;
  size_t line = 0;
  std::string reason;  // "invalid JSON", "invalid UTF-8 at byte 12", "missing field 'text'", ...
  std::string where() const;  // "file:line"
};

struct BadRecordLog {
  size_t count = 0;
  std::vector<BadRecord> examples;  // the first max_bad_examples
  void add(BadRecord bad, size_t max_examples);
  nlohmann::json to_json() const;
  static BadRecordLog from_json(const nlohmann::json& j);
};

class RecordReader {
 public:
  RecordReader(const SourceSpec& source, RecordOptions options);
  ~RecordReader();
  // Next good record; false at end. Bad records are logged (or thrown when strict).
  bool next(Record& record);
  const BadRecordLog& bad_records() const { return bad_; }
  size_t records_read() const { return good_; }

 private:
  struct Impl;
  void reject(size_t line, std::string reason);
  bool parse_json_line(const std::string& line, size_t number, Record& record);
  bool parse_parquet_row(nlohmann::ordered_json row, size_t number, Record& record);
  // A record from a JSON object (a JSONL line or a Parquet row); record.raw comes in set.
  bool accept_object(nlohmann::ordered_json object, size_t number, Record& record);
  SourceSpec source_;
  RecordOptions options_;
  std::unique_ptr<Impl> impl_;
  BadRecordLog bad_;
  size_t good_ = 0;
};

// Reads every good record of a source (tests, selection).
std::vector<Record> read_records(const SourceSpec& source, const RecordOptions& options,
                                 BadRecordLog* bad = nullptr);

}  // namespace moeforge::data
