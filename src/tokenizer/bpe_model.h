// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, ranked merges, unk /
// byte_fallback / fuse_unk, ignore_merges, continuing_subword_prefix / end_of_word_suffix, and a
// bounded, thread-safe cache of word -> ids.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/flat_map.h"
#include "tokenizer/json_fields.h"

namespace moeforge::tokenizer {

class BpeModel {
 public:
  BpeModel(const Json& spec, const JsonPath& at);
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of `id`, or nullptr when the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  // Number of vocab entries (what HF calls the model's vocab size).
  size_t vocab_count() const { return vocab_.size(); }
  // One past the largest id in the vocab.
  size_t id_bound() const { return id_to_token_.size(); }

 private:
  struct Merge {
    int32_t rank = 0;
    int32_t new_id = 0;
  };
  struct CacheEntry {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const { return merges_.find(pair_key(a, b)); }
  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  void merge_small(std::vector<int32_t>& symbols) const;
  void merge_large(std::vector<int32_t>& symbols) const;
  int32_t lookup_char(std::string_view ch) const;

  StringMap<int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  U64Map<Merge> merges_;
  std::vector<uint8_t> in_merge_;  // per id: 1 if some merge has it on either side
  std::vector<int32_t> char_ids_;  // code point -> id for single-char tokens (fast path), or -1
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xXX> token ids for byte_fallback, or -1

  mutable std::mutex cache_mutex_;
  mutable StringMap<CacheEntry> cache_;
  mutable std::vector<int32_t> cache_ids_;
};

}  // namespace moeforge::tokenizer
