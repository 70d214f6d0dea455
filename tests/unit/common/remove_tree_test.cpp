// remove_tree: whole trees, single files, missing paths, symlinks removed but never followed,
// and an error naming what could not be removed.
#include "common/remove_tree.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "test_util.h"

namespace moeforge {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, TreesFilesMissingPathsAndLinks) {
  test::TempDir dir;
  fs::create_directories(dir / "t" / "a" / "b");
  std::ofstream(dir / "t" / "a" / "b" / "f.txt") << "x";
  std::ofstream(dir / "t" / "g.txt") << "y";
  fs::create_directories(dir / "keep");
  std::ofstream(dir / "keep" / "precious.txt") << "z";
  fs::create_directory_symlink(dir / "keep", dir / "t" / "link");  // must not be followed
  EXPECT_TRUE(remove_tree(dir / "t"));
  EXPECT_FALSE(fs::exists(dir / "t"));
  EXPECT_TRUE(fs::exists(dir / "keep" / "precious.txt"));
  std::ofstream(dir / "file") << "w";
  EXPECT_TRUE(remove_tree(dir / "file"));
  EXPECT_FALSE(fs::exists(dir / "file"));
  EXPECT_TRUE(remove_tree(dir / "never-there"));
  remove_tree_or_fail(dir / "never-there");
}

TEST(RemoveTree, FailureNamesThePath) {
  // procfs refuses every unlink, even to root: a safe file that cannot be removed.
  std::string error;
  EXPECT_FALSE(remove_tree("/proc/self/status", &error));
  EXPECT_EQ(error.rfind("/proc/self/status: ", 0), 0u) << error;
  MOEFORGE_EXPECT_ERROR(remove_tree_or_fail("/proc/self/status"), "cannot remove /proc/self/status: ");
}

}  // namespace
}  // namespace moeforge
