// PCRE2 (UTF + UCP, JIT) wrapper for tokenizer.json regexes, which HF runs with Oniguruma: the
// pattern is adjusted where the two engines differ (\s also matches U+0085 in Oniguruma).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace moeforge::tokenizer {

// Per-call match state (match data + JIT stack); one per encode, reused for every regex.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
  void* match_data() const { return match_data_; }
  void* match_context() const { return match_context_; }
  // Gives JIT matching a large stack; false if it already has one (or allocation failed).
  bool grow_jit_stack();

 private:
  void* match_data_ = nullptr;
  void* match_context_ = nullptr;
  void* jit_stack_ = nullptr;
};

class Regex {
 public:
  // `what` names the pattern's origin for error messages ("tokenizer.json: pre_tokenizer ...").
  Regex(const std::string& pattern, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls fn(start, end) for each match in `text` (valid UTF-8), iterating like Oniguruma's
  // find_iter: an empty match right after the previous match is skipped.
  template <typename F>
  void for_each_match(std::string_view text, RegexScratch& scratch, F fn) const {
    size_t search_from = 0;
    size_t last_match_end = std::string_view::npos;
    while (search_from <= text.size()) {
      size_t s, e;
      if (!find(text, search_from, scratch, s, e)) return;
      if (s == e && last_match_end == e) {
        search_from += search_from < text.size() ? char_length(text, search_from) : 1;
        continue;
      }
      search_from = e;
      last_match_end = e;
      fn(s, e);
    }
  }

  // First match at or after `from`; false when there is none.
  bool find(std::string_view text, size_t from, RegexScratch& scratch, size_t& start,
            size_t& end) const;

 private:
  static size_t char_length(std::string_view text, size_t i);
  void* code_ = nullptr;
  bool jit_ = false;
  std::string what_;
};

// Rewrites an Oniguruma pattern into an equivalent PCRE2 one (exposed for tests).
std::string onig_to_pcre2(const std::string& pattern);

// Escapes `literal` so that it matches itself as a PCRE2 pattern.
std::string regex_escape(std::string_view literal);

}  // namespace moeforge::tokenizer
