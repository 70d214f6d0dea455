// What llama.cpp's converter writes for one model: the architecture's hyperparameter keys (from
// config.json, with the converter's key lists) and the tensor list (llama.cpp names, ggml dims and
// types), each tensor with the code that streams its bytes. Families llama.cpp cannot express, and
// moeforge extensions it has no field for, are refused with the reason before anything is read.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_vocab.h"

namespace moeforge {

class CheckpointStore;

// The requested file type (--type): the type of every 2-D weight that is not kept F32.
enum class GgufFileType { F32, F16, BF16, Q8_0 };
GgufFileType parse_gguf_file_type(const std::string& text);  // "f32" | "f16" | "bf16" | "q8_0"

struct GgufTensorPlan {
  GgufTensorDecl decl;
  std::function<void(GgufFileWriter&)> write;  // appends exactly decl.bytes()
};

struct GgufModelPlan {
  std::string arch;            // general.architecture: "llama", "qwen2moe", "gpt-oss", ...
  GgufVocabOptions vocab;      // how the family's converter reads its tokenizer
  GgufMetadata metadata;       // general.* and the architecture's keys (no tokenizer yet)
  std::vector<GgufTensorPlan> tensors;
  std::vector<std::string> notes;  // where llama.cpp will compute something else (printed, not fatal)
};

// Throws naming the model and the reason when llama.cpp cannot express it.
GgufModelPlan plan_gguf_model(const ModelSpec& spec, const nlohmann::json& config,
                              std::shared_ptr<const CheckpointStore> store, GgufFileType type);

}  // namespace moeforge
