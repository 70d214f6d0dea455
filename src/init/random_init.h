// `moeforge init`: a randomly initialised checkpoint of any supported family. The config is the
// family's tiny defaults with the user's JSON merged over them (RFC 7386: null removes a key);
// every tensor the spec implies (arch/expected_tensors) is written: N(0, std) for matrices and
// embeddings, ones for norm weights, zeros for biases and attention sinks. Deterministic: each
// tensor's values depend only on the seed and the tensor's name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "arch/model_spec.h"
#include "io/dtype.h"

namespace moeforge::init {

struct InitOptions {
  std::string family;                 // model_type; may be empty when config has "model_type"
  nlohmann::json config = nlohmann::json::object();  // overrides merged over the tiny defaults
  std::filesystem::path out;
  uint64_t seed = 0;
  double std = 0.02;
  DType dtype = DType::F32;           // F32 or BF16
  std::filesystem::path tokenizer;    // optional: vocab size and bos/eos/pad from it; files copied
  bool overwrite = false;
};

struct InitResult {
  std::filesystem::path path;
  nlohmann::json config;              // as written to config.json
  uint64_t parameters = 0;
  size_t tensors = 0;
  uint64_t bytes = 0;
};

// The family's tiny defaults (a few hundred thousand parameters): what `init` starts from.
// Throws listing the supported families for an unknown one.
nlohmann::json default_config(const std::string& family);

// Defaults + overrides (+ tokenizer ids when options.tokenizer is set), with model_type,
// architectures and dtype filled; validated by parsing it into a ModelSpec.
nlohmann::json init_config(const InitOptions& options);

InitResult init_model(const InitOptions& options);

// "--config" value: inline JSON when it starts with '{', else a file path.
nlohmann::json parse_config_argument(const std::string& value);

}  // namespace moeforge::init
