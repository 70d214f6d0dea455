// Added-token vocabulary and splitting (see added_tokens.h); the match rules follow HF's
// AddedVocabulary::find_matches.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {

void AddedVocabulary::Matcher::add(const std::string& pattern, int32_t token) {
  if (nodes.empty()) nodes.emplace_back();
  patterns.push_back(pattern);
  first_byte[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    auto& kids = nodes[node].children;
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, INT32_MIN));
    if (it != kids.end() && it->first == c) {
      node = it->second;
    } else {
      int32_t child = static_cast<int32_t>(nodes.size());
      kids.insert(it, {c, child});
      nodes.emplace_back();
      node = child;
    }
  }
  if (nodes[node].token < 0) nodes[node].token = token;  // the first of equal patterns wins
}

std::pair<size_t, int32_t> AddedVocabulary::Matcher::longest_at(std::string_view text,
                                                                 size_t i) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t k = i; k < text.size(); ++k) {
    const auto& kids = nodes[node].children;
    auto c = static_cast<unsigned char>(text[k]);
    auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(c, INT32_MIN));
    if (it == kids.end() || it->first != c) break;
    node = it->second;
    if (nodes[node].token >= 0) best = {k + 1 - i, nodes[node].token};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(const Json& list, const BpeModel& model,
                                 const Normalizer* normalizer, const JsonPath& at) {
  if (!list.is_null() && !list.is_array()) at.fail("expected an array");
  int64_t max_added = -1;
  for (size_t i = 0; list.is_array() && i < list.size(); ++i) {
    const Json& t = list[i];
    JsonPath t_at = at.index(i);
    AddedToken token;
    token.content = get_string(t, "content", t_at);
    token.special = get_bool_or(t, "special", false, t_at);
    token.lstrip = get_bool_or(t, "lstrip", false, t_at);
    token.rstrip = get_bool_or(t, "rstrip", false, t_at);
    token.single_word = get_bool_or(t, "single_word", false, t_at);
    token.normalized = get_bool_or(t, "normalized", !token.special, t_at);
    if (has_value(t, "id")) as_token_id(t.at("id"), t_at.child("id"));  // validated, not trusted
    if (token.content.empty() || by_content_.count(token.content)) continue;
    if (auto id = model.token_to_id(token.content)) {
      token.id = *id;
    } else {
      auto vocab = static_cast<int64_t>(model.vocab_count());
      token.id = static_cast<int32_t>(max_added < 0 ? vocab
                                      : (max_added >= vocab || vocab == 0) ? max_added + 1 : vocab);
    }
    max_added = std::max<int64_t>(max_added, token.id);
    by_content_[token.content] = tokens_.size();
    by_id_.emplace(token.id, tokens_.size());
    tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    if (token.normalized) {
      // HF matches normalized tokens by their normalized form.
      std::string buffer;
      std::string pattern(apply_normalizer(normalizer, token.content, buffer));
      if (!pattern.empty()) normalized_.add(pattern, static_cast<int32_t>(i));
    } else {
      raw_.add(token.content, static_cast<int32_t>(i));
    }
    if (token.single_word && !word_char_)  // the regex crate's Unicode \w
      word_char_ = std::make_unique<Regex>(
          R"(^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])", at.label + ": word test");
  }
}

AddedVocabulary::~AddedVocabulary() = default;

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

bool AddedVocabulary::is_special(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it != by_content_.end() && tokens_[it->second].special;
}

bool AddedVocabulary::word_boundary_before(std::string_view text, size_t i) const {
  if (i == 0) return true;
  size_t start = i;
  previous_code_point(text, start);
  RegexScratch scratch;
  size_t s, e;
  return !word_char_->find(text.substr(start, i - start), 0, scratch, s, e);
}

bool AddedVocabulary::word_boundary_after(std::string_view text, size_t i) const {
  if (i >= text.size()) return true;
  size_t end = i;
  next_code_point(text, end);
  RegexScratch scratch;
  size_t s, e;
  return !word_char_->find(text.substr(i, end - i), 0, scratch, s, e);
}

void AddedVocabulary::split(std::string_view text, bool normalized_set,
                            std::vector<Segment>& out) const {
  const Matcher& matcher = normalized_set ? normalized_ : raw_;
  size_t emitted = 0;  // end of what has been emitted so far
  if (!matcher.patterns.empty()) {
    size_t i = 0;
    while (i < text.size()) {
      if (!matcher.first_byte[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      auto [length, index] = matcher.longest_at(text, i);
      if (index < 0) {
        ++i;
        continue;
      }
      const AddedToken& token = tokens_[index];
      size_t start = i, stop = i + length;
      i = stop;  // the scan resumes after the raw match whatever happens to it below
      if (token.single_word &&
          !(word_boundary_before(text, start) && word_boundary_after(text, stop)))
        continue;
      if (token.lstrip) {
        size_t s = start;
        while (s > 0) {
          size_t p = s;
          if (!is_white_space(previous_code_point(text, p))) break;
          s = p;
        }
        start = std::max(s, emitted);
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          size_t p = stop;
          if (!is_white_space(next_code_point(text, p))) break;
          stop = p;
        }
      }
      if (emitted < start) out.push_back({emitted, start, -1});
      out.push_back({start, stop, token.id});
      emitted = stop;
    }
  }
  if (emitted < text.size()) out.push_back({emitted, text.size(), -1});
}

}  // namespace moeforge::tokenizer
