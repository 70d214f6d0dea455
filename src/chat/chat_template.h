// Chat templates: renders a tokenizer's Jinja `chat_template` exactly as transformers'
// apply_chat_template(..., tokenize=False) does, including its input preparation (None-valued
// message keys dropped, reasoning fields aliased, special tokens exposed as variables).
//
//   auto tmpl = moeforge::chat::ChatTemplate::from_tokenizer_dir("shared/data/tokenizers/qwen3");
//   moeforge::chat::ChatTemplateInputs in;
//   in.messages = {{{"role", "user"}, {"content", "Hi"}}};
//   in.add_generation_prompt = true;
//   std::string prompt = tmpl.render(in);
#pragma once

#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "chat/jinja_template.h"

namespace moeforge::chat {

using Json = nlohmann::ordered_json;  // key order is preserved (tojson output depends on it)

struct ChatTemplateInputs {
  Json messages = Json::array();       // [{"role": ..., "content": ...}, ...]
  bool add_generation_prompt = false;
  Json tools;                          // null: no tools (the template sees `tools` = none)
  Json extra_context = Json::object(); // template kwargs: enable_thinking, reasoning_effort, bos_token, ...
  std::optional<std::tm> now;          // what strftime_now() formats; nullopt: the current local time
};

class ChatTemplate {
 public:
  // Reads DIR/chat_template.jinja (+ DIR/additional_chat_templates/*.jinja) if present, else
  // tokenizer_config.json's chat_template (a string or a list of {"name", "template"}), and the
  // special tokens (bos/eos/unk/sep/pad/cls/mask; strings or {"content": ...} objects).
  static ChatTemplate from_tokenizer_dir(const std::string& dir);
  // One template from a string; `special_tokens` is an object such as {"bos_token": "<s>"}.
  static ChatTemplate from_string(const std::string& source, Json special_tokens = Json::object(),
                                  const std::string& label = "<chat_template>");

  std::string render(const ChatTemplateInputs& inputs) const;

  // Replaces the templates (e.g. with a file given on the command line), keeping special tokens.
  void set_template(const std::string& source, const std::string& label);
  const Json& special_tokens() const { return special_tokens_; }
  std::vector<std::string> template_names() const;

 private:
  struct Named {
    std::string source;
    jinja::Template compiled;
  };
  std::map<std::string, Named> templates_;  // "default", "tool_use", ...
  bool single_ = true;                      // one unnamed template
  Json special_tokens_ = Json::object();

  const Named& select(bool has_tools) const;
};

// The special tokens transformers exposes to templates, read from DIR/tokenizer_config.json
// (an empty object when the file is absent).
Json read_special_tokens(const std::string& dir);

// Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS" or "YYYY-MM-DD HH:MM:SS" (for injecting strftime_now's time).
std::tm parse_datetime(const std::string& text);

}  // namespace moeforge::chat
