// `moeforge export-gguf MODEL --out F.gguf [--type f32|f16|bf16|q8_0]`: a Hugging Face checkpoint
// (any layout moeforge reads, GPT-OSS MXFP4 included) -> one GGUF file with the tensor names,
// shapes, types and metadata llama.cpp's own converter writes, tokenizer included, streamed tensor
// by tensor (MXFP4 experts are repacked, never dequantised).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace moeforge {

struct GgufExportOptions {
  std::filesystem::path model;
  std::filesystem::path out;
  std::string type = "f16";  // the converter's default --outtype
  bool overwrite = false;
  bool verbose = false;
};

struct GgufExportResult {
  std::string arch;
  uint64_t tensors = 0;
  uint64_t bytes = 0;
};

GgufExportResult export_gguf(const GgufExportOptions& options);

}  // namespace moeforge
