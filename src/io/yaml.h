// YAML documents read into JSON (mergekit's configs are YAML), through libyaml's C parser (Debian
// libyaml-dev; a C API, so no C++ ABI to share with libtorch). Mappings become objects (keys as
// strings), sequences arrays; plain scalars are typed by YAML 1.2's core schema (null, true/false,
// integers incl. 0x/0o, floats incl. .inf/.nan), quoted and block scalars stay strings; anchors and
// aliases are resolved. One document per file; tags other than the core ones are rejected.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace moeforge {

// Parses a YAML document. Errors throw moeforge::Error "LABEL:LINE:COLUMN: what is wrong".
nlohmann::json parse_yaml(std::string_view text, const std::string& label);
// Reads and parses a file; errors name it.
nlohmann::json read_yaml_file(const std::filesystem::path& path);

}  // namespace moeforge
