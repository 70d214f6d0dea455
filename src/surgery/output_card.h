// README.md of a surgery output (upcycle, merge, grow, add-shared-expert): a model card of its own
// — Hugging Face front matter, what was done to which base, the resulting architecture and how to
// load it — never the base's text, which is kept beside it as BASE_MODEL_CARD.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace moeforge::surgery {

struct OutputCard {
  std::string operation;  // "upcycle", "grow", ... (empty: no card is written)
  std::string base;       // the model operated on (path as given)
  std::string what;       // one line: what the operation did
};

// The markdown for `config` (the output's config.json, auto_map included) and whether the base had a card.
std::string output_card_markdown(const OutputCard& card, const nlohmann::json& config, bool base_card_kept);

}  // namespace moeforge::surgery
