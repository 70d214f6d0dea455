// Helpers shared by unit tests: temporary directories and access to shared/data.
#pragma once

#include <filesystem>
#include <string>

#include "common/error.h"

namespace moeforge::test {

// A fresh directory under the system temp dir, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& child) const { return path_ / child; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path shared_data_dir();
std::filesystem::path source_dir();
void write_text_file(const std::filesystem::path& path, const std::string& text);
std::string read_text_file(const std::filesystem::path& path);

// Runs `fn` and returns the moeforge::Error message it threw; fails the test if nothing was thrown.
#define MOEFORGE_EXPECT_ERROR(statement, substring)                                   \
  do {                                                                                \
    try {                                                                             \
      statement;                                                                      \
      ADD_FAILURE() << "expected moeforge::Error containing '" << (substring) << "'"; \
    } catch (const ::moeforge::Error& e) {                                            \
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos)             \
          << "message was: " << e.what();                                             \
    }                                                                                 \
  } while (0)

}  // namespace moeforge::test
