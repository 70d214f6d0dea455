// Post-processor implementations (see post_processor.h).
#include "tokenizer/post_processor.h"

#include <map>

namespace moeforge::tokenizer {
namespace {

// Covers TemplateProcessing ("single" template) and Roberta/Bert ([CLS] A [SEP]).
class Wrap : public PostProcessor {
 public:
  Wrap(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  void special_ids(std::vector<int32_t>& before, std::vector<int32_t>& after) const override {
    before.insert(before.end(), before_.begin(), before_.end());
    after.insert(after.begin(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_, after_;
};

class Identity : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
  void special_ids(std::vector<int32_t>&, std::vector<int32_t>&) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& s : steps_) s->process(ids, add_special_tokens);
  }
  void special_ids(std::vector<int32_t>& before, std::vector<int32_t>& after) const override {
    for (const auto& s : steps_) s->special_ids(before, after);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

std::unique_ptr<PostProcessor> make_template(const Json& spec, const JsonPath& at) {
  // special_tokens: name -> {"ids": [...]}
  std::map<std::string, std::vector<int32_t>> specials;
  if (has_value(spec, "special_tokens")) {
    const Json& table = spec.at("special_tokens");
    JsonPath table_at = at.child("special_tokens");
    if (!table.is_object()) table_at.fail("expected an object");
    for (auto it = table.begin(); it != table.end(); ++it) {
      JsonPath entry_at = table_at.child(it.key());
      const Json& ids = get_array(it.value(), "ids", entry_at);
      std::vector<int32_t>& list = specials[it.key()];
      for (size_t i = 0; i < ids.size(); ++i)
        list.push_back(as_token_id(ids[i], entry_at.child("ids").index(i)));
    }
  }
  const Json& single = get_array(spec, "single", at);
  JsonPath single_at = at.child("single");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const Json& piece = single[i];
    JsonPath piece_at = single_at.index(i);
    if (has_value(piece, "SpecialToken")) {
      std::string name = get_string(piece.at("SpecialToken"), "id", piece_at.child("SpecialToken"));
      auto found = specials.find(name);
      if (found == specials.end())
        piece_at.fail("special token '", name, "' is missing from special_tokens");
      auto& side = seen_sequence ? after : before;
      side.insert(side.end(), found->second.begin(), found->second.end());
    } else if (has_value(piece, "Sequence")) {
      std::string name = get_string(piece.at("Sequence"), "id", piece_at.child("Sequence"));
      if (name != "A") piece_at.fail("the single template may only use sequence A, not '", name, "'");
      if (seen_sequence) piece_at.fail("sequence A appears twice");
      seen_sequence = true;
    } else {
      piece_at.fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) single_at.fail("the template never places sequence A");
  return std::make_unique<Wrap>(std::move(before), std::move(after));
}

int32_t pair_id(const Json& spec, const char* key, const JsonPath& at) {
  const Json& pair = require(spec, key, at);
  if (!pair.is_array() || pair.size() != 2) at.child(key).fail("expected [token, id]");
  return as_token_id(pair[1], at.child(key).index(1));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Json& spec, const JsonPath& at) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, at);
  if (type == "TemplateProcessing") return make_template(spec, at);
  if (type == "RobertaProcessing" || type == "BertProcessing")
    return std::make_unique<Wrap>(std::vector<int32_t>{pair_id(spec, "cls", at)},
                                  std::vector<int32_t>{pair_id(spec, "sep", at)});
  if (type == "ByteLevel") return std::make_unique<Identity>();  // it only adjusts offsets
  if (type == "Sequence") {
    at.check_depth();
    const Json& list = get_array(spec, "processors", at);
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_post_processor(list[i], at.child("processors").index(i));
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  at.fail("unsupported post_processor type '", type,
          "' (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, "
          "Sequence)");
}

}  // namespace moeforge::tokenizer
