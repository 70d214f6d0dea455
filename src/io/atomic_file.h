// Writes a whole file atomically: into a temporary sibling, fsync, then rename over the target, so
// readers see either the old file or the complete new one, never a torn write.
#pragma once

#include <filesystem>
#include <string_view>

namespace moeforge {

void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace moeforge
