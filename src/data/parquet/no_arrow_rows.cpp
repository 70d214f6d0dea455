// ParquetRows in a build without pyarrow's libarrow/libparquet: every use names the file and how
// to get a build that reads it.
#include "common/error.h"
#include "data/parquet_rows.h"

namespace moeforge::data {

bool parquet_supported() { return false; }

struct ParquetRows::Impl {};

ParquetRows::ParquetRows(const std::filesystem::path& path, const std::vector<std::string>&) {
  fail("'", path.string(), "': this moeforge was built without Parquet support (install pyarrow into the build's venv, "
       "`.venv/bin/pip install pyarrow`, then re-run cmake; or convert the file to JSONL)");
}

ParquetRows::~ParquetRows() = default;

bool ParquetRows::next(nlohmann::ordered_json&, size_t&) { return false; }

size_t ParquetRows::rows() const { return 0; }

std::vector<std::string> ParquetRows::column_names() const { return {}; }

}  // namespace moeforge::data
