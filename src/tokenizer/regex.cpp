// PCRE2 wrapper (see regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "common/error.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {

RegexScratch::RegexScratch() {
  match_data_ = pcre2_match_data_create(1, nullptr);
  match_context_ = pcre2_match_context_create(nullptr);
  if (!match_data_ || !match_context_) fail("out of memory creating PCRE2 match data");
  // The JIT stack is only made when the default 32 KiB one runs out (see grow_jit_stack).
}

bool RegexScratch::grow_jit_stack() {
  if (jit_stack_) return false;
  jit_stack_ = pcre2_jit_stack_create(256 * 1024, 256 * 1024 * 1024, nullptr);
  if (!jit_stack_) return false;
  pcre2_jit_stack_assign(static_cast<pcre2_match_context*>(match_context_), nullptr, jit_stack_);
  return true;
}

RegexScratch::~RegexScratch() {
  pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
  pcre2_match_context_free(static_cast<pcre2_match_context*>(match_context_));
  if (jit_stack_) pcre2_jit_stack_free(static_cast<pcre2_jit_stack*>(jit_stack_));
}

std::string onig_to_pcre2(const std::string& pattern) {
  // Oniguruma's \s is Unicode White_Space, which includes U+0085; PCRE2's (with UCP) does not.
  // Its \w also takes marks and all numbers.
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char n = pattern[i + 1];
      if (n == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (n == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else if (n == 'w') {  // Oniguruma's Unicode \w: letters, marks, numbers, connectors
        out += in_class ? "\\p{L}\\p{M}\\p{N}\\p{Pc}" : "[\\p{L}\\p{M}\\p{N}\\p{Pc}]";
      } else if (n == 'W' && !in_class) {
        out += "[^\\p{L}\\p{M}\\p{N}\\p{Pc}]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[') {
      if (in_class && i + 1 < pattern.size() && pattern[i + 1] == ':') {
        size_t close = pattern.find(":]", i + 2);
        if (close != std::string::npos) {  // POSIX class like [:alpha:] inside a bracket
          out.append(pattern, i, close + 2 - i);
          i = close + 1;
          continue;
        }
      }
      if (in_class) {
        ++class_depth;  // Oniguruma allows nested classes
      } else {
        in_class = true;
        class_depth = 1;
        out += c;
        // A ']' right after '[' or '[^' is a literal.
        if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
        if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
        continue;
      }
    } else if (c == ']' && in_class) {
      if (--class_depth == 0) in_class = false;
    }
    out += c;
  }
  return out;
}

std::string regex_escape(std::string_view literal) {
  std::string out = "\\Q";
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal.compare(i, 2, "\\E") == 0) {  // \Q...\E cannot contain \E: close, escape, reopen
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += literal[i];
    }
  }
  return out + "\\E";
}

Regex::Regex(const std::string& pattern, const std::string& what) : what_(what) {
  if (find_invalid_utf8(pattern) != std::string::npos) fail(what, ": regex is not valid UTF-8");
  std::string translated = onig_to_pcre2(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail(what, ": invalid regex '", pattern, "' at offset ", offset, ": ",
         reinterpret_cast<const char*>(message));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

size_t Regex::char_length(std::string_view text, size_t i) {
  return utf8_length(static_cast<unsigned char>(text[i]));
}

bool Regex::find(std::string_view text, size_t from, RegexScratch& scratch, size_t& start,
                 size_t& end) const {
  auto* code = static_cast<pcre2_code*>(code_);
  auto* md = static_cast<pcre2_match_data*>(scratch.match_data());
  auto* mc = static_cast<pcre2_match_context*>(scratch.match_context());
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), from, 0, md, mc)
                : pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, md, mc);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT && scratch.grow_jit_stack())
    rc = pcre2_jit_match(code, subject, text.size(), from, 0, md, mc);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    fail(what_, ": regex match failed: ", reinterpret_cast<const char*>(message));
  }
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  start = ov[0];
  end = ov[1];
  return true;
}

}  // namespace moeforge::tokenizer
