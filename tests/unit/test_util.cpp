#include "test_util.h"

#include "common/remove_tree.h"

#include <fstream>
#include <random>
#include <sstream>

namespace moeforge::test {

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / ("moeforge-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  remove_tree(path_);  // not std::filesystem::remove_all: see common/remove_tree.h
}

std::filesystem::path shared_data_dir() { return MOEFORGE_SHARED_DATA; }
std::filesystem::path source_dir() { return MOEFORGE_SOURCE_DIR; }

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace moeforge::test
