// Small string and formatting helpers shared by every layer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moeforge {

// "1.50 GiB", "12.0 MiB", "512 B".
std::string human_bytes(uint64_t bytes);
// "1.23 GB" (decimal gigabytes, as --max-memory takes them).
std::string format_gb(uint64_t bytes);
// "7.24B", "1.3M", "950".
std::string human_count(uint64_t count);
std::vector<std::string> split(std::string_view text, char separator);
std::string join(const std::vector<std::string>& parts, std::string_view separator);
bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);
// "[2, 3, 4]"
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace moeforge
