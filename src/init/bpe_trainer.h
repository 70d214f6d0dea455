// Byte-level BPE training (`moeforge tokenizer train`): GPT-2 byte alphabet and pre-tokenizer
// regex, pre-token frequencies, then greedy merges of the most frequent adjacent pair with
// incremental pair counts (only words containing the merged pair are revisited). Writes a Hugging
// Face tokenizer.json + tokenizer_config.json (bos/eos/pad and a ChatML chat template).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data/records.h"

namespace moeforge::init {

struct BpeTrainOptions {
  size_t vocab_size = 4096;     // total, special tokens and the 256 byte tokens included
  size_t min_frequency = 2;     // stop when the best pair occurs fewer times
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"};
  std::string bos_token = "<|endoftext|>";  // "" = none
  std::string eos_token = "<|endoftext|>";
  std::string pad_token = "<|pad|>";        // "" = none
  bool chat_template = true;    // ChatML template when <|im_start|>/<|im_end|> are special tokens
  uint64_t max_bytes = 0;       // stop reading input after this many bytes of text (0 = all)
  int64_t model_max_length = 2048;
  data::RecordOptions records;  // how --data records are read
};

struct BpeModelData {
  std::vector<std::string> vocab;                            // id -> token (byte-level alphabet)
  std::vector<std::pair<std::string, std::string>> merges;   // in rank order
  std::vector<std::string> special_tokens;                   // ids 0..n-1 of vocab
  uint64_t bytes_seen = 0, pre_tokens = 0, unique_pre_tokens = 0;
};

// GPT-2 regex pre-tokens of raw text, as raw bytes (training counts these) ...
std::vector<std::string> gpt2_split(const std::string& text);
// ... and in the byte-level alphabet (" hello" -> "Ġhello"), as Hugging Face shows them.
std::vector<std::string> gpt2_pre_tokenize(const std::string& text);
// GPT-2 bytes -> unicode mapping of one byte string ("Ġhello" for " hello").
std::string byte_level_encode(const std::string& bytes);

// Trains on `texts` (each a document).
BpeModelData train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options);
// Reads every record of a --data spec (text records; chat records contribute their contents).
std::vector<std::string> read_training_texts(const std::string& spec, const BpeTrainOptions& options);

// tokenizer.json / tokenizer_config.json contents.
std::string tokenizer_json(const BpeModelData& model);
std::string tokenizer_config_json(const BpeModelData& model, const BpeTrainOptions& options);
// Writes both files into `out_dir` (created; files replaced atomically).
void write_tokenizer(const std::filesystem::path& out_dir, const BpeModelData& model, const BpeTrainOptions& options);

}  // namespace moeforge::init
