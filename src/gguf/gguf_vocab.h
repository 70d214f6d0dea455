// The tokenizer as llama.cpp reads it (tokenizer.ggml.* and tokenizer.chat_template), from a model
// directory's tokenizer.json, tokenizer_config.json, config.json and chat template files, with the
// rules of llama.cpp's converter (convert_hf_to_gguf.py: get_vocab_base / LlamaHfVocab /
// SpecialVocab).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "gguf/gguf_file.h"

namespace moeforge {

struct GgufVocabOptions {
  int64_t vocab_size = 0;         // config.json's (the embedding rows); ids beyond the tokenizer are [PADi]
  bool allow_llama_spm = false;   // the family's converter tries a SentencePiece-style tokenizer.json first
  bool write_space_prefix = false;  // tokenizer_config add_prefix_space -> tokenizer.ggml.add_space_prefix
  std::string plain_byte_level_pre = "gpt-2";  // the pre name of a ByteLevel-only pre-tokenizer
};

// Adds the tokenizer keys to `metadata`. Throws naming the file for a missing or unsupported
// tokenizer (a pre-tokenizer llama.cpp has no equivalent of, a non-BPE model).
void add_gguf_vocab(const std::filesystem::path& model_dir, const GgufVocabOptions& options, GgufMetadata& metadata);

}  // namespace moeforge
