// Pre-tokenizer implementations (see pre_tokenizer.h); the split behaviours follow HF's
// SplitDelimiterBehavior exactly, since merged/isolated delimiters change the words the model sees.
#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& name, const JsonPath& at) {
  if (name == "Removed") return Behavior::Removed;
  if (name == "Isolated") return Behavior::Isolated;
  if (name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::MergedWithNext;
  if (name == "Contiguous") return Behavior::Contiguous;
  at.fail("unknown split behavior '", name, "'");
}

struct Span {
  size_t start, end;
  bool is_match;
};

// Spans of `text` covered by the matches of `pattern` and the gaps between them.
void match_spans(const Regex& pattern, std::string_view text, bool invert, EncodeScratch& scratch,
                 std::vector<Span>& spans) {
  spans.clear();
  size_t prev = 0;
  pattern.for_each_match(text, scratch.regex, [&](size_t s, size_t e) {
    if (prev != s) spans.push_back({prev, s, invert});
    spans.push_back({s, e, !invert});
    prev = e;
  });
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
}

// Applies a split behaviour to `spans` (in place) as HF's NormalizedString::split does.
void apply_behavior(Behavior behavior, std::vector<Span>& spans) {
  std::vector<Span> out;
  out.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Isolated:
      return;
    case Behavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) out.push_back(s);
      break;
    case Behavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) out.back().end = s.end;
        else out.push_back(s);
        previous_match = s.is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !previous_match && !out.empty()) out.back().start = s.start;
        else out.push_back(s);
        previous_match = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case Behavior::Contiguous:
      for (size_t k = 0; k < spans.size(); ++k) {
        const Span& s = spans[k];
        if (k > 0 && s.is_match == previous_match) out.back().end = s.end;
        else out.push_back(s);
        previous_match = s.is_match;
      }
      break;
  }
  spans.swap(out);
}

void emit(const Piece& piece, const std::vector<Span>& spans, std::vector<Piece>& out) {
  for (const Span& s : spans)
    if (s.end > s.start)
      out.push_back({piece.text.substr(s.start, s.end - s.start), piece.at_origin && s.start == 0});
}

class Split : public PreTokenizer {
 public:
  Split(std::unique_ptr<Regex> pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out,
             EncodeScratch& scratch) const override {
    std::vector<Span> spans;
    for (const Piece& piece : in) {
      if (behavior_ == Behavior::Isolated) {  // hot path: no span list needed
        size_t prev = 0;
        pattern_->for_each_match(piece.text, scratch.regex, [&](size_t s, size_t e) {
          if (s > prev) out.push_back({piece.text.substr(prev, s - prev), piece.at_origin && prev == 0});
          if (e > s) out.push_back({piece.text.substr(s, e - s), piece.at_origin && s == 0});
          prev = e;
        });
        if (prev < piece.text.size())
          out.push_back({piece.text.substr(prev), piece.at_origin && prev == 0});
        continue;
      }
      match_spans(*pattern_, piece.text, invert_, scratch, spans);
      apply_behavior(behavior_, spans);
      emit(piece, spans, out);
    }
  }

 private:
  std::unique_ptr<Regex> pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const JsonPath& at)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, at.label + ": ByteLevel regex");
  }
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out,
             EncodeScratch& scratch) const override {
    const ByteLevelTable& table = byte_level_table();
    for (const Piece& original : in) {
      Piece piece = original;
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        scratch.text.assign(" ");
        scratch.text.append(piece.text);
        piece.text = scratch.arena.store(scratch.text);
      }
      auto push = [&](std::string_view part, bool at_origin) {
        if (part.empty()) return;
        scratch.text.clear();
        table.append_encoded(scratch.text, part);
        out.push_back({scratch.arena.store(scratch.text), at_origin});
      };
      if (!regex_) {
        push(piece.text, piece.at_origin);
        continue;
      }
      size_t prev = 0;
      regex_->for_each_match(piece.text, scratch.regex, [&](size_t s, size_t e) {
        if (s > prev) push(piece.text.substr(prev, s - prev), piece.at_origin && prev == 0);
        push(piece.text.substr(s, e - s), piece.at_origin && s == 0);
        prev = e;
      });
      if (prev < piece.text.size()) push(piece.text.substr(prev), piece.at_origin && prev == 0);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, Never, First };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split, const JsonPath& at)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {
    if (split_) splitter_ = std::make_unique<Regex>(regex_escape(replacement_), at.label + ": Metaspace");
  }
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out,
             EncodeScratch& scratch) const override {
    std::vector<Span> spans;
    for (const Piece& original : in) {
      std::string& text = scratch.text;
      text.clear();
      for (char c : original.text) {
        if (c == ' ') text += replacement_;
        else text += c;
      }
      bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always ||
                      (scheme_ == PrependScheme::First && original.at_origin)))
        text.insert(0, replacement_);
      Piece piece{scratch.arena.store(text), original.at_origin};
      if (!split_) {
        if (!piece.text.empty()) out.push_back(piece);
        continue;
      }
      match_spans(*splitter_, piece.text, false, scratch, spans);
      apply_behavior(Behavior::MergedWithNext, spans);
      emit(piece, spans, out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  std::unique_ptr<Regex> splitter_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void apply(const std::vector<Piece>& in, std::vector<Piece>& out,
             EncodeScratch& scratch) const override {
    if (steps_.empty()) {
      out.insert(out.end(), in.begin(), in.end());
      return;
    }
    std::vector<Piece> current = in, next;
    for (size_t i = 0; i < steps_.size(); ++i) {
      next.clear();
      steps_[i]->apply(current, i + 1 == steps_.size() ? out : next, scratch);
      current.swap(next);
    }
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> regex_split(const std::string& pattern, Behavior behavior,
                                          bool invert, const JsonPath& at) {
  return std::make_unique<Split>(std::make_unique<Regex>(pattern, at.label + ": " + at.path),
                                 behavior, invert);
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& spec, const JsonPath& at) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, at);
  if (type == "Split") {
    auto pattern = make_pattern(require(spec, "pattern", at), at.child("pattern"));
    Behavior behavior = parse_behavior(get_string(spec, "behavior", at), at.child("behavior"));
    return std::make_unique<Split>(std::move(pattern), behavior, get_bool_or(spec, "invert", false, at));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(get_bool_or(spec, "add_prefix_space", true, at),
                                       get_bool_or(spec, "use_regex", true, at), at);
  if (type == "Metaspace") {
    std::string replacement = get_string_or(spec, "replacement", "\xE2\x96\x81", at);
    size_t i = 0;
    if (replacement.empty() || (next_code_point(replacement, i), i != replacement.size()))
      at.child("replacement").fail("expected exactly one character");
    PrependScheme scheme = PrependScheme::Always;
    if (has_value(spec, "prepend_scheme")) {
      std::string name = get_string(spec, "prepend_scheme", at);
      if (name == "always") scheme = PrependScheme::Always;
      else if (name == "never") scheme = PrependScheme::Never;
      else if (name == "first") scheme = PrependScheme::First;
      else at.child("prepend_scheme").fail("unknown prepend_scheme '", name, "'");
    } else if (!get_bool_or(spec, "add_prefix_space", true, at)) {
      scheme = PrependScheme::Never;
    }
    return std::make_unique<Metaspace>(replacement, scheme, get_bool_or(spec, "split", true, at), at);
  }
  if (type == "Digits")
    return regex_split(R"(\p{N})",
                       get_bool_or(spec, "individual_digits", false, at) ? Behavior::Isolated
                                                                          : Behavior::Contiguous,
                       false, at);
  if (type == "Whitespace") return regex_split(R"(\w+|[^\w\s]+)", Behavior::Removed, true, at);
  if (type == "WhitespaceSplit") return regex_split(R"(\s)", Behavior::Removed, false, at);
  if (type == "CharDelimiterSplit")
    return regex_split(regex_escape(get_string(spec, "delimiter", at)), Behavior::Removed, false, at);
  if (type == "Sequence") {
    at.check_depth();
    const Json& list = get_array(spec, "pretokenizers", at);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_pre_tokenizer(list[i], at.child("pretokenizers").index(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  at.fail("unsupported pre_tokenizer type '", type,
          "' (supported: Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, "
          "CharDelimiterSplit, Sequence)");
}

}  // namespace moeforge::tokenizer
