// Special token ids, add-bos/eos/sep flags and the chat template, as gguf-py's SpecialVocab reads
// them (tokenizer.json's post-processor and added tokens, tokenizer_config.json, config.json's
// *_token_id, chat_template.jinja / chat_template.json).
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"

namespace moeforge {

// `tokenizer` is tokenizer.json; `tokenizer_config` / `config` are null when the file is absent.
// `n_vocab` > 0 skips ids at or beyond it; `merges` adds tokenizer.ggml.merges (BPE "a b" strings).
void add_gguf_special_tokens(const std::filesystem::path& model_dir, const nlohmann::json& tokenizer,
                             nlohmann::json tokenizer_config, const nlohmann::json& config, int64_t n_vocab,
                             bool merges, GgufMetadata& metadata);

}  // namespace moeforge
