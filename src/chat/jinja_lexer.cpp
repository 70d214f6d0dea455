// Jinja lexer (see jinja_lexer.h). Follows jinja2/lexer.py's rules state by state.
#include "chat/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "chat/jinja_text.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Python str.rstrip() on template text (unicode whitespace).
std::string rstrip_all(std::string_view text) { return py_strip(text, std::nullopt, false, true); }
bool all_whitespace(std::string_view text) {
  if (text.empty()) return false;
  for (char32_t c : decode_utf8(text)) if (!py_isspace(c)) return false;
  return true;
}

class Lexer {
 public:
  Lexer(std::string source, const std::string& label, const LexerOptions& options)
      : src_(std::move(source)), label_(label), opt_(options) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      std::string text = src_.substr(pos_, tag == std::string::npos ? std::string::npos : tag - pos_);
      if (tag == std::string::npos) {
        emit_data(text);
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];  // '{', '%', '#'
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      if (sign == '-') {
        text = rstrip_all(text);
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && all_whitespace(std::string_view(text).substr(l_pos))) {
          text.resize(l_pos);
        }
      }
      emit_data(text);
      pos_ = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        line_starting = lex_comment();
      } else if (kind == '%' && try_raw(sign)) {
        line_starting = last_match_newline_;
      } else {
        line_starting = lex_tag(kind == '%');
      }
    }
    tokens_.push_back({TokenType::End, "", line_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  const std::string& label_;
  LexerOptions opt_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  bool last_match_newline_ = false;
  // Line numbers computed lazily by counting newlines.
  size_t line_pos_ = 0;
  int line_ = 1;

  int line_at(size_t p) {
    if (p < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    for (; line_pos_ < p && line_pos_ < src_.size(); ++line_pos_) if (src_[line_pos_] == '\n') ++line_;
    return line_;
  }

  [[noreturn]] void error(size_t at, const std::string& message) { fail(label_, ":", line_at(at), ": ", message); }

  size_t find_tag(size_t from) const {
    size_t p = from;
    while (true) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char n = src_[p + 1];
      if (n == '{' || n == '%' || n == '#') return p;
      ++p;
    }
  }

  void emit_data(const std::string& text) {
    if (!text.empty()) tokens_.push_back({TokenType::Data, text, line_at(pos_)});
  }

  // After an end tag: `-` strips all following whitespace, plain block/comment ends eat one "\n".
  bool consume_end(size_t end_pos, size_t tag_len, char sign, bool block_like) {
    size_t p = end_pos + tag_len;
    bool newline = false;
    if (sign == '-') {
      size_t q = p;
      while (q < src_.size()) {
        // \s in Python regex: unicode whitespace
        unsigned char c = static_cast<unsigned char>(src_[q]);
        if (c < 0x80) {
          if (!(is_ws(src_[q]) || (c >= 0x1C && c <= 0x1F))) break;
          ++q;
        } else {
          size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
          std::u32string cp = decode_utf8(std::string_view(src_).substr(q, len));
          if (cp.size() != 1 || !py_isspace(cp[0])) break;
          q += len;
        }
      }
      newline = q > p && src_[q - 1] == '\n';
      p = q;
    } else if (sign != '+' && block_like && opt_.trim_blocks && p < src_.size() && src_[p] == '\n') {
      ++p;
      newline = true;
    }
    pos_ = p;
    return newline;
  }

  bool lex_comment() {
    size_t start = pos_;
    for (size_t p = pos_; p + 1 < src_.size(); ++p) {
      if ((src_[p] == '+' || src_[p] == '-') && src_.compare(p + 1, 2, "#}") == 0) {
        return consume_end(p + 1, 2, src_[p], true);
      }
      if (src_.compare(p, 2, "#}") == 0) return consume_end(p, 2, 0, true);
    }
    error(start, "Missing end of comment tag");
  }

  // `{% raw %}...{% endraw %}`: copied verbatim.
  bool try_raw(char open_sign) {
    size_t p = pos_;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_name_char(src_[p + 3]))) return false;
    p += 3;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    size_t after_open;
    if (src_.compare(p, 3, "-%}") == 0) {
      after_open = p + 3;
      while (after_open < src_.size() && is_ws(src_[after_open])) ++after_open;
    } else if (src_.compare(p, 2, "%}") == 0) {
      after_open = p + 2;
    } else {
      return false;
    }
    // find {% [-+]? \s* endraw \s* [-+]?%}
    size_t q = after_open;
    while (true) {
      q = src_.find("{%", q);
      if (q == std::string::npos) error(pos_, "Missing end of raw directive");
      size_t r = q + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      while (r < src_.size() && is_ws(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") == 0) {
        r += 6;
        while (r < src_.size() && is_ws(src_[r])) ++r;
        char end_sign = 0;
        if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) end_sign = src_[r++];
        if (src_.compare(r, 2, "%}") == 0) {
          std::string body = src_.substr(after_open, q - after_open);
          if (sign == '-') {
            body = rstrip_all(body);
          } else if (sign != '+' && opt_.lstrip_blocks) {
            size_t nl = body.rfind('\n');
            size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
            if (l_pos > 0 && all_whitespace(std::string_view(body).substr(l_pos))) body.resize(l_pos);
          }
          size_t save = pos_;
          pos_ = after_open;
          emit_data(body);
          pos_ = save;
          last_match_newline_ = consume_end(r, 2, end_sign, true);
          (void)open_sign;
          return true;
        }
      }
      q += 2;
    }
  }

  // Expression tokens until the matching `%}` / `}}` (only when brackets are balanced).
  bool lex_tag(bool block) {
    size_t begin = pos_;
    tokens_.push_back({block ? TokenType::BlockBegin : TokenType::VarBegin, "", line_at(begin)});
    std::string balance;
    const char* close = block ? "%}" : "}}";
    while (true) {
      if (pos_ >= src_.size()) error(begin, std::string("unexpected end of template, expected '") + close + "'");
      if (balance.empty()) {
        if (block && src_.compare(pos_, 3, "+%}") == 0) {
          tokens_.push_back({TokenType::BlockEnd, "", line_at(pos_)});
          return consume_end(pos_ + 1, 2, '+', true);
        }
        if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0) {
          tokens_.push_back({block ? TokenType::BlockEnd : TokenType::VarEnd, "", line_at(pos_)});
          return consume_end(pos_ + 1, 2, '-', block);
        }
        if (src_.compare(pos_, 2, close) == 0) {
          tokens_.push_back({block ? TokenType::BlockEnd : TokenType::VarEnd, "", line_at(pos_)});
          return consume_end(pos_, 2, 0, block);
        }
      }
      char c = src_[pos_];
      if (is_ws(c)) {
        ++pos_;
        continue;
      }
      int line = line_at(pos_);
      if (is_digit(c)) {
        lex_number(line);
        continue;
      }
      if (is_name_start(c)) {
        size_t e = pos_;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        tokens_.push_back({TokenType::Name, src_.substr(pos_, e - pos_), line});
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        lex_string(line);
        continue;
      }
      static const char* const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                        "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      std::string op;
      for (const char* candidate : ops) {
        if (src_.compare(pos_, std::char_traits<char>::length(candidate), candidate) == 0) {
          op = candidate;
          break;
        }
      }
      if (op.empty()) error(pos_, cat("unexpected char '", std::string(1, c), "' in expression"));
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) error(pos_, "unexpected '" + op + "'");
        if (balance.back() != op[0]) error(pos_, cat("unexpected '", op, "', expected '", std::string(1, balance.back()), "'"));
        balance.pop_back();
      }
      tokens_.push_back({TokenType::Operator, op, line});
      pos_ += op.size();
    }
  }

  void lex_number(int line) {
    size_t p = pos_;
    auto digits = [&](size_t q) {
      size_t start = q;
      while (q < src_.size() && (is_digit(src_[q]) || (src_[q] == '_' && q > start && q + 1 < src_.size() && is_digit(src_[q + 1])))) ++q;
      return q;
    };
    // prefixed integers 0b/0o/0x
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("bBoOxX", src_[p + 1])) {
      char k = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[p + 1])));
      int base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
      size_t q = p + 2;
      std::string value;
      while (q < src_.size() && (std::isxdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) {
        if (src_[q] != '_') value.push_back(src_[q]);
        ++q;
      }
      if (value.empty()) error(p, "invalid integer literal");
      errno = 0;
      long long v = std::strtoll(value.c_str(), nullptr, base);
      if (errno) error(p, "integer literal out of range");
      tokens_.push_back({TokenType::Integer, std::to_string(v), line});
      pos_ = q;
      return;
    }
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && is_digit(src_[r])) {
        q = digits(r);
        is_float = true;
      }
    }
    std::string text;
    for (size_t i = p; i < q; ++i) if (src_[i] != '_') text.push_back(src_[i]);
    tokens_.push_back({is_float ? TokenType::Float : TokenType::Integer, text, line});
    pos_ = q;
  }

  void lex_string(int line) {
    char quote = src_[pos_];
    size_t p = pos_ + 1;
    std::string raw;
    while (true) {
      if (p >= src_.size()) error(pos_, "unexpected end of string literal");
      char c = src_[p];
      if (c == quote) break;
      if (c == '\\' && p + 1 < src_.size()) {
        raw.push_back(c);
        raw.push_back(src_[p + 1]);
        p += 2;
        continue;
      }
      raw.push_back(c);
      ++p;
    }
    pos_ = p + 1;
    tokens_.push_back({TokenType::String, unescape(raw, line), line});
  }

  // Python's "unicode-escape" decoding as jinja2 applies it to string literals.
  std::string unescape(const std::string& raw, int line) {
    std::string out;
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c != '\\' || i + 1 >= raw.size()) {
        out.push_back(c);
        continue;
      }
      char n = raw[++i];
      switch (n) {
        case '\n': break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          size_t width = n == 'x' ? 2 : n == 'u' ? 4 : 8;
          if (i + width >= raw.size()) {
            fail(label_, ":", line, ": truncated \\", std::string(1, n), " escape in string literal");
          }
          std::string hex = raw.substr(i + 1, width);
          for (char h : hex) {
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              fail(label_, ":", line, ": truncated \\", std::string(1, n), " escape in string literal");
            }
          }
          unsigned long cp = std::stoul(hex, nullptr, 16);
          if (cp > 0x10FFFF) fail(label_, ":", line, ": illegal unicode escape in string literal");
          append_utf8(out, static_cast<char32_t>(cp));
          i += width;
          break;
        }
        default:
          if (n >= '0' && n <= '7') {
            unsigned cp = static_cast<unsigned>(n - '0');
            for (int k = 0; k < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7'; ++k) {
              cp = cp * 8 + static_cast<unsigned>(raw[++i] - '0');
            }
            append_utf8(out, static_cast<char32_t>(cp));
          } else {
            out.push_back('\\');
            out.push_back(n);
          }
      }
    }
    return out;
  }
};

// jinja2 normalises \r\n and \r to \n and drops one trailing newline.
std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& label, const LexerOptions& options) {
  Lexer lexer(normalize_newlines(source, options.keep_trailing_newline), label, options);
  return lexer.run();
}

}  // namespace moeforge::jinja
