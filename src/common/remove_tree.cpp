#include "common/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace moeforge {

namespace {

thread_local std::string g_failure;  // nftw's callback is a plain function: its error goes here

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  if (std::remove(path) == 0 || errno == ENOENT) return 0;
  g_failure = std::string(path) + ": " + std::strerror(errno);
  return 1;  // stop the walk
}

}  // namespace

bool remove_tree(const std::filesystem::path& path, std::string* error) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    if (error) *error = path.string() + ": " + std::strerror(errno);
    return false;
  }
  g_failure.clear();
  // Children before their directory (FTW_DEPTH); links removed, never followed (FTW_PHYS).
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0) return true;
  if (error) *error = g_failure.empty() ? path.string() + ": " + std::strerror(errno) : g_failure;
  return false;
}

void remove_tree_or_fail(const std::filesystem::path& path) {
  std::string error;
  if (!remove_tree(path, &error)) fail("cannot remove ", error);
}

}  // namespace moeforge
