// moeforge's Hugging Face tokenizer: loads tokenizer.json (+ tokenizer_config.json for BOS/EOS/PAD)
// and encodes/decodes exactly like the `tokenizers` library for BPE tokenizers (GPT-2/Llama 3/
// Qwen/GPT-OSS byte-level, and Llama 2/Mistral SentencePiece-style).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moeforge::tokenizer {

class Tokenizer {
 public:
  // Loads a tokenizer.json file; a tokenizer_config.json beside it supplies BOS/EOS/PAD names.
  static Tokenizer from_file(const std::filesystem::path& path);
  // Loads a directory holding tokenizer.json (and optionally tokenizer_config.json).
  static Tokenizer from_directory(const std::filesystem::path& dir);
  // from_directory for a directory, from_file otherwise.
  static Tokenizer load(const std::filesystem::path& file_or_dir);
  // Parses tokenizer.json text; `label` names it in error messages. `config_json` is the optional
  // tokenizer_config.json text. Any malformed input throws moeforge::Error (safe to fuzz).
  static Tokenizer from_json_string(std::string_view json, const std::string& label = "tokenizer.json",
                                    std::string_view config_json = {});

  // Token ids of `text` (valid UTF-8, else moeforge::Error). add_special_tokens applies the
  // post-processor (e.g. Llama 2's BOS); special-token text in `text` is always recognised.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                 bool add_special_tokens = true) const;
  // Text of `ids`; unknown ids are skipped, as HF does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  // One past the largest id (model vocab and added tokens): the embedding rows a model needs.
  size_t vocab_size() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
};

}  // namespace moeforge::tokenizer

namespace moeforge {
using tokenizer::Tokenizer;
}  // namespace moeforge
