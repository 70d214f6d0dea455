// NumPy .npy (format 1.0) arrays and .npz archives (a zip of .npy members, stored without
// compression, with Zip64 records when a member or the archive passes 4 GiB), streamed to a file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moeforge::stats {

// One array: `descr` is NumPy's type string ("<f2", "<i8", "<U12"), `shape` its dimensions ({} =
// 0-d), `data` the little-endian bytes in C order (not owned: must outlive write_npz).
struct NpyArray {
  std::string name;  // member name without ".npy"
  std::string descr;
  std::vector<int64_t> shape;
  std::string_view data;
};

// The .npy header (magic, version 1.0, padded dict, '\n') for an array; total length % 64 == 0.
std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape);

// UTF-32LE code points of UTF-8 `text` (NumPy "<U" strings); invalid bytes become U+FFFD.
std::string utf32le(std::string_view text);

// Writes `arrays` as `path` (an .npz readable by numpy.load). Throws moeforge::Error on I/O failure.
void write_npz(const std::filesystem::path& path, const std::vector<NpyArray>& arrays);

}  // namespace moeforge::stats
