// Added tokens (tokenizer.json "added_tokens"): ids, special flags, and splitting text around
// them (leftmost-longest match, with single_word / lstrip / rstrip) before the model runs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_fields.h"

namespace moeforge::tokenizer {

class BpeModel;
class Normalizer;
class Regex;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A stretch of text, or an added token (id >= 0) covering [start, end).
struct Segment {
  size_t start, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  // Ids are assigned as HF does when loading: the model's id if the content is in the vocab,
  // otherwise the next free id after the model vocab (the "id" field is only advisory).
  AddedVocabulary(const Json& list, const BpeModel& model, const Normalizer* normalizer,
                  const JsonPath& at);
  ~AddedVocabulary();

  // Splits `text` around the tokens that match the raw text (normalized=false) or, with
  // `normalized_set`, the normalized text. Segments cover `text` in order; empty ones are dropped.
  void split(std::string_view text, bool normalized_set, std::vector<Segment>& out) const;
  bool has_normalized_tokens() const { return !normalized_.patterns.empty(); }

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* by_id(int32_t id) const;
  bool is_special(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Byte trie over a set of patterns for leftmost-longest matching.
  struct Matcher {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
      int32_t token = -1;                                       // index into tokens_
    };
    std::vector<Node> nodes;
    std::vector<std::string> patterns;
    bool first_byte[256] = {};
    void add(const std::string& pattern, int32_t token);
    // Longest pattern starting at text[i]: its length and token index, or token -1.
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t i) const;
  };
  bool word_boundary_before(std::string_view text, size_t i) const;
  bool word_boundary_after(std::string_view text, size_t i) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  Matcher raw_, normalized_;
  std::unique_ptr<Regex> word_char_;  // only when some token is single_word
};

}  // namespace moeforge::tokenizer
