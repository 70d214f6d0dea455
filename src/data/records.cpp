// Record reading for .txt and .jsonl sources (plain, gzip or zstd) and Parquet files, with
// bad-record accounting. A Parquet row is the JSON object of its columns, read like a JSONL line.
#include "data/records.h"

#include <algorithm>

#include "common/error.h"
#include "common/strings.h"
#include "data/parquet_rows.h"
#include "data/text_file.h"

namespace moeforge::data {

std::string BadRecord::where() const { return cat(file, ":", line); }

void BadRecordLog::add(BadRecord bad, size_t max_examples) {
  ++count;
  if (examples.size() < max_examples) examples.push_back(std::move(bad));
}

nlohmann::json BadRecordLog::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& b : examples) list.push_back({{"file", b.file}, {"line", b.line}, {"reason", b.reason}});
  return {{"count", count}, {"examples", list}};
}

BadRecordLog BadRecordLog::from_json(const nlohmann::json& j) {
  BadRecordLog log;
  log.count = j.value("count", size_t{0});
  for (const auto& b : j.value("examples", nlohmann::json::array()))
    log.examples.push_back({b.value("file", ""), b.value("line", size_t{0}), b.value("reason", "")});
  return log;
}

struct RecordReader::Impl {
  std::unique_ptr<LineReader> lines;        // JSONL, or Text per line
  std::unique_ptr<ParquetRows> rows;        // Parquet
  std::string whole;                        // Text with doc_sep
  size_t offset = 0;                        // next unread byte of `whole`
  size_t whole_line = 1;                    // line number at `offset`
};

RecordReader::RecordReader(const SourceSpec& source, RecordOptions options)
    : source_(source), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (source_.format == SourceFormat::Parquet) {
    impl_->rows = std::make_unique<ParquetRows>(source_.path, std::vector<std::string>{
        options_.text_field, options_.messages_field, options_.domain_field, options_.prompt_field});
    const auto names = impl_->rows->column_names();
    auto has = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) != names.end(); };
    if (!has(options_.text_field) && !has(options_.messages_field))
      fail("'", source_.path.string(), "': no column '", options_.text_field, "' or '", options_.messages_field,
           "' (its columns: ", join(names, ", "), "; choose one with --text-field)");
  } else if (source_.format == SourceFormat::Text && options_.doc_sep) {
    if (options_.doc_sep->empty()) fail("--doc-sep must not be empty");
    impl_->whole = read_text_file(source_.path);
  } else {
    impl_->lines = std::make_unique<LineReader>(source_.path);
  }
}

RecordReader::~RecordReader() = default;

void RecordReader::reject(size_t line, std::string reason) {
  BadRecord bad{source_.path.string(), line, std::move(reason)};
  if (options_.strict) fail(bad.where(), ": bad record: ", bad.reason, " (drop --strict to skip bad records)");
  bad_.add(std::move(bad), options_.max_bad_examples);
}

bool RecordReader::parse_json_line(const std::string& line, size_t number, Record& record) {
  size_t bad_byte = find_invalid_utf8(line);
  if (bad_byte != std::string::npos) {
    reject(number, cat("invalid UTF-8 at byte ", bad_byte));
    return false;
  }
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(line, nullptr, false);
  if (j.is_discarded()) {
    reject(number, "invalid JSON");
    return false;
  }
  if (!j.is_object()) {
    reject(number, "not a JSON object");
    return false;
  }
  record.raw = line;
  return accept_object(std::move(j), number, record);
}

bool RecordReader::accept_object(nlohmann::ordered_json j, size_t number, Record& record) {
  std::string raw = std::move(record.raw);
  record = Record{};
  record.line = number;
  auto text = j.find(options_.text_field);
  auto messages = j.find(options_.messages_field);
  if (messages != j.end() && !messages->is_null()) {
    if (!messages->is_array() || messages->empty()) {
      reject(number, cat("field '", options_.messages_field, "' must be a non-empty list of messages"));
      return false;
    }
    for (size_t i = 0; i < messages->size(); ++i) {
      const auto& m = (*messages)[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        reject(number, cat("message ", i, " needs a string 'role'"));
        return false;
      }
    }
    record.kind = Record::Kind::Chat;
    record.messages = std::move(*messages);
  } else if (text != j.end() && text->is_string()) {
    record.kind = Record::Kind::Text;
    record.text = text->get<std::string>();
  } else if (text != j.end()) {
    reject(number, cat("field '", options_.text_field, "' is not a string"));
    return false;
  } else {
    reject(number, cat("missing field '", options_.text_field, "' (or '", options_.messages_field, "')"));
    return false;
  }
  auto domain = j.find(options_.domain_field);
  record.domain = domain != j.end() && domain->is_string() ? domain->get<std::string>() : source_.domain;
  if (record.domain.empty()) record.domain = source_.domain;
  auto prompt = j.find(options_.prompt_field);
  if (prompt != j.end() && prompt->is_string()) record.prompt = prompt->get<std::string>();
  record.raw = std::move(raw);
  return true;
}

bool RecordReader::parse_parquet_row(nlohmann::ordered_json row, size_t number, Record& record) {
  try {  // Arrow does not validate UTF-8; the strict dump does (and is the record's raw form)
    record.raw = row.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::json::exception&) {
    reject(number, "invalid UTF-8 in a string column");
    return false;
  }
  return accept_object(std::move(row), number, record);
}

bool RecordReader::next(Record& record) {
  if (impl_->rows) {
    nlohmann::ordered_json row;
    size_t number = 0;
    while (impl_->rows->next(row, number))
      if (parse_parquet_row(std::move(row), number, record)) return ++good_, true;
    return false;
  }
  if (impl_->lines) {
    std::string line;
    while (impl_->lines->next(line)) {
      size_t number = impl_->lines->line_number();
      bool blank = line.find_first_not_of(" \t") == std::string::npos;
      if (blank) continue;
      if (source_.format == SourceFormat::Jsonl) {
        if (parse_json_line(line, number, record)) return ++good_, true;
        continue;
      }
      size_t bad_byte = find_invalid_utf8(line);
      if (bad_byte != std::string::npos) {
        reject(number, cat("invalid UTF-8 at byte ", bad_byte));
        continue;
      }
      record = Record{};
      record.text = std::move(line);
      record.domain = source_.domain;
      record.line = number;
      return ++good_, true;
    }
    return false;
  }
  // Text split on doc_sep: documents are the (non-blank) pieces between separators.
  const std::string& sep = *options_.doc_sep;
  std::string& whole = impl_->whole;
  while (impl_->offset < whole.size()) {
    size_t start = impl_->offset;
    size_t end = whole.find(sep, start);
    if (end == std::string::npos) end = whole.size();
    size_t line = impl_->whole_line;
    std::string_view piece(whole.data() + start, end - start);
    size_t next = std::min(whole.size(), end + sep.size());
    for (size_t i = start; i < next; ++i) impl_->whole_line += whole[i] == '\n';
    impl_->offset = next;
    if (piece.find_first_not_of(" \t\r\n") == std::string_view::npos) continue;
    size_t bad_byte = find_invalid_utf8(piece);
    if (bad_byte != std::string::npos) {
      reject(line, cat("invalid UTF-8 at byte ", bad_byte));
      continue;
    }
    record = Record{};
    record.text = std::string(piece);
    record.domain = source_.domain;
    record.line = line;
    return ++good_, true;
  }
  return false;
}

std::vector<Record> read_records(const SourceSpec& source, const RecordOptions& options, BadRecordLog* bad) {
  RecordReader reader(source, options);
  std::vector<Record> out;
  Record record;
  while (reader.next(record)) out.push_back(std::move(record));
  if (bad) *bad = reader.bad_records();
  return out;
}

}  // namespace moeforge::data
