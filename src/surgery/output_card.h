// README.md of a surgery output (upcycle, merge, grow, add-shared-expert): a model card of its own
// — Hugging Face front matter, what was done to which base, the resulting architecture and how to
// load it — never the base's text, which is kept beside it as BASE_MODEL_CARD.md. Front matter as
// the Hub expects it: base_model only as a repo id (known when the base lies in the Hugging Face
// cache), base_model_relation (merge for merges, else finetune), the base card's licence carried,
// no absolute local paths.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace moeforge::surgery {

struct OutputCard {
  std::string operation;  // "upcycle", "grow", ... (empty: no card is written)
  std::string base;       // the model operated on (path as given)
  std::string what;       // one line: what the operation did
  std::string base_id;    // the base's Hub repo id when given (--base-model-id); else derived from `base`
};

// The markdown for `config` (the output's config.json, auto_map included); `base_card` is the
// base's README text, or null when it had none.
std::string output_card_markdown(const OutputCard& card, const nlohmann::json& config, const std::string* base_card);

// The value of `key` in a model card's YAML front matter ("" when absent), e.g. "license".
std::string front_matter_value(const std::string& markdown, const std::string& key);

}  // namespace moeforge::surgery
