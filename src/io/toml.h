// TOML 1.0 documents read into JSON, so recipes and pipeline jobs may be written in either.
//
// Parsed by toml++ (Debian's libtomlplusplus). Everything in TOML 1.0 except dates and times (no
// config of ours has one; they are rejected with a message); floats beyond the double range read
// as +-inf (as the spec and tomllib say; toml++ alone refuses them); keys of more than 128 parts are
// refused (toml++ would recurse once per part). Python's tomllib is the reference
// (tests/parity/test_toml_parity.py).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace moeforge {

// Parses a TOML document. Errors throw moeforge::Error "LABEL:LINE:COLUMN: what is wrong".
nlohmann::json parse_toml(std::string_view text, const std::string& label);

// A config file by its extension: ".toml" is TOML, anything else JSON. Errors name the file.
nlohmann::json read_config_file(const std::filesystem::path& path);
// The same for a file named by a flag or field (`what`, e.g. "train: --recipe"): a missing file is
// reported with the flag and its resolved path.
nlohmann::json read_config_file(const std::filesystem::path& path, const std::string& what);

}  // namespace moeforge
