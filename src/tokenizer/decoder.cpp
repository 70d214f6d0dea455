// Decoder implementations (see decoder.h); each mirrors the HF decoder of the same name,
// including its treatment of invalid UTF-8 (U+FFFD).
#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {

class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const ByteLevelTable& table = byte_level_table();
    std::string bytes;
    for (const std::string& t : tokens)
      if (!table.append_decoded(bytes, t)) bytes += t;  // unmapped tokens pass through as-is
    std::string text;
    append_utf8_lossy(text, bytes);
    tokens.assign(1, std::move(text));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && strip_first_)) out += ' ';
          k += replacement_.size();
        } else {
          out += t[k++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      size_t last = 0;
      for (size_t at = t.find(from_); at != std::string::npos; at = t.find(from_, at + from_.size())) {
        out.append(t, last, at - last);
        out += to_;
        last = at + from_.size();
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string from_, to_;
};

// "<0xAB>" -> byte (Rust's u8::from_str_radix also takes a leading '+').
bool parse_byte_token(const std::string& t, unsigned char& byte) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = t[3] == '+' ? 0 : hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return false;
  byte = static_cast<unsigned char>(hi * 16 + lo);
  return true;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (find_invalid_utf8(bytes) == std::string::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
    };
    for (std::string& t : tokens) {
      unsigned char b;
      if (parse_byte_token(t, b)) {
        bytes.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
      for (size_t i = 0; i < t.size();) {
        size_t at = i;
        chars.push_back({at, next_code_point(t, i)});
      }
      size_t cut_start = 0;
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i].second == content_; ++i)
        cut_start = i + 1;
      size_t cut_stop = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        size_t index = chars.size() - i - 1;
        if (chars[index].second != content_) break;
        cut_stop = index;
      }
      if (cut_stop <= cut_start) {
        t.clear();
        continue;
      }
      size_t begin = cut_start < chars.size() ? chars[cut_start].first : t.size();
      size_t end = cut_stop < chars.size() ? chars[cut_stop].first : t.size();
      t = t.substr(begin, end - begin);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class BpeDecoder : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string& t = tokens[i];
      std::string out;
      size_t last = 0;
      for (size_t at = t.find(suffix_); !suffix_.empty() && at != std::string::npos;
           at = t.find(suffix_, at + suffix_.size())) {
        out.append(t, last, at - last);
        out += replacement;
        last = at + suffix_.size();
      }
      out.append(t, last, std::string::npos);
      t = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& spec, const JsonPath& at) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, at);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    std::string replacement = get_string_or(spec, "replacement", "\xE2\x96\x81", at);
    if (replacement.empty()) at.child("replacement").fail("must not be empty");
    bool strip_first = true;
    if (has_value(spec, "prepend_scheme")) strip_first = get_string(spec, "prepend_scheme", at) != "never";
    else strip_first = get_bool_or(spec, "add_prefix_space", true, at);
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  if (type == "Replace") {
    const Json& pattern = require(spec, "pattern", at);
    if (!has_value(pattern, "String"))
      at.child("pattern").fail("only {\"String\": ...} patterns are supported in the Replace decoder");
    std::string from = get_string(pattern, "String", at.child("pattern"));
    if (from.empty()) at.child("pattern").fail("empty String pattern");
    return std::make_unique<ReplaceDecoder>(from, get_string(spec, "content", at));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = get_string(spec, "content", at);
    size_t i = 0;
    char32_t cp = content.empty() ? 0 : next_code_point(content, i);
    if (content.empty() || i != content.size()) at.child("content").fail("expected one character");
    int64_t start = as_int(require(spec, "start", at), at.child("start"));
    int64_t stop = as_int(require(spec, "stop", at), at.child("stop"));
    if (start < 0 || stop < 0) at.fail("start and stop must not be negative");
    return std::make_unique<StripDecoder>(cp, static_cast<size_t>(start), static_cast<size_t>(stop));
  }
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(get_string_or(spec, "suffix", "</w>", at));
  if (type == "Sequence") {
    at.check_depth();
    const Json& list = get_array(spec, "decoders", at);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_decoder(list[i], at.child("decoders").index(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  at.fail("unsupported decoder type '", type,
          "' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, "
          "Sequence)");
}

}  // namespace moeforge::tokenizer
