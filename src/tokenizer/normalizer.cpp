// Normalizer implementations (see normalizer.h). Each mirrors the HF `tokenizers` normalizer of
// the same name.
#include "tokenizer/normalizer.h"

#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/pieces.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_nfc.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {

class Nfc : public Normalizer {
 public:
  bool normalize(std::string_view in, std::string& out) const override {
    if (nfc_quick_check(in)) return false;
    out.clear();
    append_nfc(out, in);
    return out != in;
  }
};

class Nfd : public Normalizer {
 public:
  bool normalize(std::string_view in, std::string& out) const override {
    if (nfc_quick_check(in)) return false;  // nothing to decompose or reorder either
    out.clear();
    append_nfd(out, in);
    return out != in;
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  bool normalize(std::string_view in, std::string& out) const override {
    if (in.empty() || prefix_.empty()) return false;
    out.assign(prefix_);
    out.append(in);
    return true;
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  // Exactly one of `literal` (non-empty) and `pattern` is used.
  Replace(std::string literal, std::unique_ptr<Regex> pattern, std::string content)
      : literal_(std::move(literal)), pattern_(std::move(pattern)), content_(std::move(content)) {}
  bool normalize(std::string_view in, std::string& out) const override {
    size_t last = 0;
    bool changed = false;
    auto replace = [&](size_t s, size_t e) {
      if (!changed) out.clear();
      out.append(in.data() + last, s - last);
      out.append(content_);
      last = e;
      changed = true;
    };
    if (pattern_) {
      RegexScratch scratch;
      pattern_->for_each_match(in, scratch, replace);
    } else {
      for (size_t at = in.find(literal_); at != std::string_view::npos;
           at = in.find(literal_, at + literal_.size()))
        replace(at, at + literal_.size());
    }
    if (!changed) return false;
    out.append(in.data() + last, in.size() - last);
    return true;
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  bool normalize(std::string_view in, std::string& out) const override {
    size_t begin = 0, end = in.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!is_white_space(next_code_point(in, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t i = end;
        if (!is_white_space(previous_code_point(in, i))) break;
        end = i;
      }
    }
    if (begin == 0 && end == in.size()) return false;
    out.assign(in.substr(begin, end - begin));
    return true;
  }

 private:
  bool left_, right_;
};

class ByteLevelNormalizer : public Normalizer {
 public:
  bool normalize(std::string_view in, std::string& out) const override {
    out.clear();
    byte_level_table().append_encoded(out, in);
    return true;
  }
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  bool normalize(std::string_view in, std::string& out) const override {
    std::string current, next;
    bool changed = false;
    for (const auto& step : steps_) {
      std::string_view source = changed ? std::string_view(current) : in;
      if (step->normalize(source, next)) {
        current.swap(next);
        changed = true;
      }
    }
    if (changed) out.swap(current);
    return changed;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

// A {"String": s} or {"Regex": r} pattern as a Regex.
std::unique_ptr<Regex> make_pattern(const Json& spec, const JsonPath& at) {
  if (has_value(spec, "String")) {
    std::string literal = get_string(spec, "String", at);
    if (literal.empty()) at.fail("empty String pattern");
    return std::make_unique<Regex>(regex_escape(literal), at.label + ": " + at.path);
  }
  if (has_value(spec, "Regex"))
    return std::make_unique<Regex>(get_string(spec, "Regex", at), at.label + ": " + at.path);
  at.fail("expected a pattern {\"String\": ...} or {\"Regex\": ...}");
}

std::unique_ptr<Normalizer> make_normalizer(const Json& spec, const JsonPath& at) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, at);
  if (type == "NFC") return std::make_unique<Nfc>();
  if (type == "NFD") return std::make_unique<Nfd>();
  if (type == "Prepend") return std::make_unique<Prepend>(get_string(spec, "prepend", at));
  if (type == "Replace") {
    const Json& pattern = require(spec, "pattern", at);
    std::string content = get_string(spec, "content", at);
    if (has_value(pattern, "String")) {
      std::string literal = get_string(pattern, "String", at.child("pattern"));
      if (literal.empty()) at.child("pattern").fail("empty String pattern");
      return std::make_unique<Replace>(literal, nullptr, content);
    }
    return std::make_unique<Replace>("", make_pattern(pattern, at.child("pattern")), content);
  }
  if (type == "Strip")
    return std::make_unique<Strip>(get_bool_or(spec, "strip_left", true, at),
                                   get_bool_or(spec, "strip_right", true, at));
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Sequence") {
    at.check_depth();
    const Json& list = get_array(spec, "normalizers", at);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_normalizer(list[i], at.child("normalizers").index(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  at.fail("unsupported normalizer type '", type,
          "' (supported: NFC, NFD, Prepend, Replace, Strip, ByteLevel, Sequence)");
}

std::string_view apply_normalizer(const Normalizer* normalizer, std::string_view in,
                                  std::string& buffer) {
  if (!normalizer || !normalizer->normalize(in, buffer)) return in;
  return buffer;
}

}  // namespace moeforge::tokenizer
