// Deletes a file or a directory tree, without following symbolic links: what
// std::filesystem::remove_all does, through POSIX nftw instead. Some PyPI libtorch builds export
// their own copy of std::filesystem; with some toolchains (a GCC 13 build against torch 2.11) the
// process then mixes two implementations of remove_all's directory walk and crashes in it.
#pragma once

#include <filesystem>
#include <string>

namespace moeforge {

// True when `path` no longer exists (a missing path is not an error); else false, with the reason
// in `error` when given.
bool remove_tree(const std::filesystem::path& path, std::string* error = nullptr);

// The same, failing with a one-line moeforge::Error naming the path.
void remove_tree_or_fail(const std::filesystem::path& path);

}  // namespace moeforge
