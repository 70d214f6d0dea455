// ParquetRows on pyarrow's libarrow/libparquet: the selected top-level columns of one row group
// are decoded at a time (ReadRowGroup), then handed out row by row as JSON.
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

#include <algorithm>

#include "common/error.h"
#include "data/parquet_rows.h"

namespace moeforge::data {

using Json = nlohmann::ordered_json;

bool parquet_supported() { return true; }

namespace {

template <class ArrayType>
Json number_at(const arrow::Array& a, int64_t i) {
  return static_cast<const ArrayType&>(a).Value(i);
}

template <class ListType>
Json list_at(const arrow::Array& a, int64_t i, const std::string& where);

// One cell as JSON; `where` names the file and column for errors.
Json value_at(const arrow::Array& a, int64_t i, const std::string& where) {
  if (a.IsNull(i)) return nullptr;
  switch (a.type_id()) {
    case arrow::Type::BOOL: return static_cast<const arrow::BooleanArray&>(a).Value(i);
    case arrow::Type::INT8: return number_at<arrow::Int8Array>(a, i);
    case arrow::Type::INT16: return number_at<arrow::Int16Array>(a, i);
    case arrow::Type::INT32: return number_at<arrow::Int32Array>(a, i);
    case arrow::Type::INT64: return number_at<arrow::Int64Array>(a, i);
    case arrow::Type::UINT8: return number_at<arrow::UInt8Array>(a, i);
    case arrow::Type::UINT16: return number_at<arrow::UInt16Array>(a, i);
    case arrow::Type::UINT32: return number_at<arrow::UInt32Array>(a, i);
    case arrow::Type::UINT64: return number_at<arrow::UInt64Array>(a, i);
    case arrow::Type::FLOAT: return number_at<arrow::FloatArray>(a, i);
    case arrow::Type::DOUBLE: return number_at<arrow::DoubleArray>(a, i);
    case arrow::Type::STRING: return std::string(static_cast<const arrow::StringArray&>(a).GetView(i));
    case arrow::Type::LARGE_STRING: return std::string(static_cast<const arrow::LargeStringArray&>(a).GetView(i));
    case arrow::Type::STRING_VIEW: return std::string(static_cast<const arrow::StringViewArray&>(a).GetView(i));
    case arrow::Type::LIST: return list_at<arrow::ListArray>(a, i, where);
    case arrow::Type::LARGE_LIST: return list_at<arrow::LargeListArray>(a, i, where);
    case arrow::Type::FIXED_SIZE_LIST: return list_at<arrow::FixedSizeListArray>(a, i, where);
    case arrow::Type::STRUCT: {
      const auto& s = static_cast<const arrow::StructArray&>(a);
      Json out = Json::object();
      for (int k = 0; k < s.num_fields(); ++k)
        out[s.struct_type()->field(k)->name()] = value_at(*s.field(k), i, where);
      return out;
    }
    case arrow::Type::DICTIONARY: {
      const auto& d = static_cast<const arrow::DictionaryArray&>(a);
      return value_at(*d.dictionary(), d.GetValueIndex(i), where);
    }
    default: fail(where, ": Parquet type ", a.type()->ToString(), " has no JSON equivalent");
  }
}

template <class ListType>
Json list_at(const arrow::Array& a, int64_t i, const std::string& where) {
  const auto& list = static_cast<const ListType&>(a);
  Json out = Json::array();
  const int64_t begin = list.value_offset(i), end = begin + list.value_length(i);
  for (int64_t j = begin; j < end; ++j) out.push_back(value_at(*list.values(), j, where));
  return out;
}

// The leaf column indices under a schema field (a list of structs has several).
void collect_leaves(const parquet::arrow::SchemaField& field, std::vector<int>& out) {
  if (field.is_leaf()) out.push_back(field.column_index);
  for (const auto& child : field.children) collect_leaves(child, out);
}

}  // namespace

struct ParquetRows::Impl {
  std::string label;
  std::unique_ptr<parquet::arrow::FileReader> reader;
  std::vector<int> leaves;                        // leaf columns of the selected fields
  int next_group = 0;
  std::shared_ptr<arrow::Table> group;            // the row group being handed out
  std::vector<std::shared_ptr<arrow::Array>> columns;
  int64_t row_in_group = 0;
  size_t rows_done = 0;
  size_t total_rows = 0;

  // Decodes the next non-empty row group; false when none is left.
  bool load_next_group() {
    while (next_group < reader->num_row_groups()) {
      auto table = reader->ReadRowGroup(next_group++, leaves);
      if (!table.ok()) fail(label, ": cannot read row group ", next_group - 1, ": ", table.status().ToString());
      auto combined = (*table)->CombineChunks();
      if (!combined.ok()) fail(label, ": ", combined.status().ToString());
      group = *combined;
      columns.clear();
      for (int c = 0; c < group->num_columns(); ++c)
        columns.push_back(group->column(c)->num_chunks() ? group->column(c)->chunk(0) : nullptr);
      row_in_group = 0;
      if (group->num_rows() > 0) return true;
    }
    group.reset();
    return false;
  }
};

ParquetRows::ParquetRows(const std::filesystem::path& path, const std::vector<std::string>& wanted)
    : impl_(std::make_unique<Impl>()) {
  impl_->label = "'" + path.string() + "'";
  try {
    auto file = arrow::io::ReadableFile::Open(path.string());
    if (!file.ok()) fail(impl_->label, ": cannot open: ", file.status().message());
    auto reader = parquet::arrow::OpenFile(*file, arrow::default_memory_pool());
    if (!reader.ok()) fail(impl_->label, ": not a readable Parquet file (", reader.status().message(), ")");
    impl_->reader = std::move(*reader);
    impl_->total_rows = static_cast<size_t>(impl_->reader->parquet_reader()->metadata()->num_rows());
  } catch (const parquet::ParquetException& e) {
    fail(impl_->label, ": not a readable Parquet file (", e.what(), ")");
  }
  for (const auto& field : impl_->reader->manifest().schema_fields)
    if (std::find(wanted.begin(), wanted.end(), field.field->name()) != wanted.end()) collect_leaves(field, impl_->leaves);
}

ParquetRows::~ParquetRows() = default;

size_t ParquetRows::rows() const { return impl_->total_rows; }

std::vector<std::string> ParquetRows::column_names() const {
  std::vector<std::string> names;
  for (const auto& field : impl_->reader->manifest().schema_fields) names.push_back(field.field->name());
  return names;
}

bool ParquetRows::next(nlohmann::ordered_json& object, size_t& row) {
  if (impl_->leaves.empty()) return false;  // none of the wanted columns: every row would be empty
  if (!impl_->group || impl_->row_in_group >= impl_->group->num_rows()) {
    try {
      if (!impl_->load_next_group()) return false;
    } catch (const parquet::ParquetException& e) {
      fail(impl_->label, ": corrupt row group (", e.what(), ")");
    }
  }
  const int64_t i = impl_->row_in_group++;
  object = Json::object();
  for (size_t c = 0; c < impl_->columns.size(); ++c) {
    const std::string& name = impl_->group->schema()->field(static_cast<int>(c))->name();
    object[name] = impl_->columns[c] ? value_at(*impl_->columns[c], i, impl_->label + " column '" + name + "'") : Json();
  }
  row = ++impl_->rows_done;
  return true;
}

}  // namespace moeforge::data
