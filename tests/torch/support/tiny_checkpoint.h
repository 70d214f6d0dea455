// Test fixture: writes a seeded random checkpoint for any config.json (every tensor the spec
// expects, N(0, std) matrices, ones for norm weights) with the project's own writer.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace moeforge::test {

// Optional hook to set particular tensors (by on-disk name) after random init; values are float32
// in the tensor's shape, converted to the stored dtype (F32 here).
using TensorOverride = std::function<bool(const std::string& name, std::vector<float>& values)>;

void write_tiny_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config, uint64_t seed,
                           float std = 0.05f, const TensorOverride& override_fn = {});

// A small config of `model_type` ("mixtral", "mistral", "gpt_oss", ...) for tests; `extra` merges over it.
nlohmann::json tiny_config(const std::string& model_type, const nlohmann::json& extra = nlohmann::json::object());

}  // namespace moeforge::test
