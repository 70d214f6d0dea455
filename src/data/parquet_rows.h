// Rows of a Parquet file (the Hugging Face datasets format) as JSON objects, one row group in
// memory at a time. Built on the libarrow/libparquet that pyarrow's wheel ships (found like
// libtorch, see cmake/Dependencies.cmake); without them the reader refuses with how to get them.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moeforge::data {

// Whether this build reads Parquet.
bool parquet_supported();

class ParquetRows {
 public:
  // Opens `path` reading only the top-level `columns` that the file has (others are never
  // decoded). Throws naming the file when it is not Parquet or a column has a type JSON lacks.
  ParquetRows(const std::filesystem::path& path, const std::vector<std::string>& columns);
  ~ParquetRows();
  // The next row as {column: value} (lists -> arrays, structs -> objects, null -> null); false at
  // the end. `row` is its 1-based number in the file (the "line" of bad-record reports).
  bool next(nlohmann::ordered_json& object, size_t& row);
  // Rows in the file, from its footer; the names of all its top-level columns.
  size_t rows() const;
  std::vector<std::string> column_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeforge::data
