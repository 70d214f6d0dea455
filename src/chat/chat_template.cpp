// Chat templates on top of the Jinja engine (see chat_template.h).
#include "chat/chat_template.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace moeforge::chat {
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path.string(), "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// transformers' special_tokens_map: the named special tokens that are set.
Json special_tokens_from_config(const Json& config) {
  Json tokens = Json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (it->is_string()) {
      tokens[key] = *it;
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      tokens[key] = (*it)["content"];
    }
  }
  return tokens;
}

// transformers' _alias_reasoning_fields: {"thinking": r, **message, "reasoning_content": r}.
Json alias_reasoning(const Json& message) {
  const Json* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    auto it = message.find(key);
    if (it != message.end() && !it->is_null()) {
      reasoning = &*it;
      break;
    }
  }
  if (!reasoning) return message;
  Json out = Json::object();
  out["thinking"] = *reasoning;
  for (auto it = message.begin(); it != message.end(); ++it) out[it.key()] = it.value();
  out["reasoning_content"] = *reasoning;
  return out;
}

}  // namespace

ChatTemplate ChatTemplate::from_string(const std::string& source, Json special_tokens, const std::string& label) {
  ChatTemplate t;
  t.special_tokens_ = special_tokens.is_object() ? std::move(special_tokens) : Json::object();
  t.set_template(source, label);
  return t;
}

void ChatTemplate::set_template(const std::string& source, const std::string& label) {
  templates_.clear();
  templates_.emplace("default", Named{source, jinja::Template::parse(source, label)});
  single_ = true;
}

ChatTemplate ChatTemplate::from_tokenizer_dir(const std::string& dir) {
  fs::path root(dir);
  if (!fs::is_directory(root)) fail("tokenizer directory '", dir, "' does not exist");
  ChatTemplate t;
  Json config = Json::object();
  fs::path config_path = root / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    try {
      config = Json::parse(read_file(config_path));
    } catch (const Json::exception& e) {
      fail("cannot parse '", config_path.string(), "': ", e.what());
    }
    if (!config.is_object()) fail("'", config_path.string(), "' is not a JSON object");
  }
  t.special_tokens_ = special_tokens_from_config(config);

  // Separate template files take priority over the config's entries (as in transformers).
  fs::path jinja_file = root / "chat_template.jinja";
  fs::path extra_dir = root / "additional_chat_templates";
  if (fs::exists(jinja_file)) {
    t.templates_.emplace("default", Named{read_file(jinja_file), jinja::Template::parse(read_file(jinja_file), jinja_file.string())});
  }
  if (fs::is_directory(extra_dir)) {
    for (const auto& entry : fs::directory_iterator(extra_dir)) {
      if (entry.path().extension() != ".jinja") continue;
      std::string source = read_file(entry.path());
      t.templates_.emplace(entry.path().stem().string(), Named{source, jinja::Template::parse(source, entry.path().string())});
    }
  }
  if (!t.templates_.empty()) {
    t.single_ = t.templates_.size() == 1 && t.templates_.count("default");
    return t;
  }
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    fail("no chat template in '", dir, "' (tokenizer_config.json has no chat_template and there is no chat_template.jinja)");
  }
  std::string label = config_path.string() + ":chat_template";
  if (it->is_string()) {
    t.set_template(it->get<std::string>(), label);
  } else if (it->is_array()) {
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
          !entry["template"].is_string()) {
        fail("'", config_path.string(), "': chat_template list entries need string 'name' and 'template'");
      }
      std::string name = entry["name"].get<std::string>();
      std::string source = entry["template"].get<std::string>();
      t.templates_.erase(name);
      t.templates_.emplace(name, Named{source, jinja::Template::parse(source, label + "[" + name + "]")});
    }
    t.single_ = false;
    if (t.templates_.empty()) fail("'", config_path.string(), "': chat_template is an empty list");
  } else {
    fail("'", config_path.string(), "': chat_template must be a string or a list of named templates");
  }
  return t;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (const auto& entry : templates_) names.push_back(entry.first);
  return names;
}

const ChatTemplate::Named& ChatTemplate::select(bool has_tools) const {
  if (single_) return templates_.begin()->second;
  if (has_tools && templates_.count("tool_use")) return templates_.at("tool_use");
  if (templates_.count("default")) return templates_.at("default");
  std::string names;
  for (const auto& entry : templates_) names += (names.empty() ? "" : ", ") + entry.first;
  fail("this tokenizer has several chat templates and none is named 'default' (available: ", names, ")");
}

std::string ChatTemplate::render(const ChatTemplateInputs& in) const {
  if (!in.messages.is_array()) fail("chat messages must be a JSON array");
  if (in.messages.empty()) fail("Cannot apply chat template to an empty conversation. Provide at least one message.");
  Json messages = Json::array();
  for (const auto& message : in.messages) {
    if (!message.is_object()) fail("Chat messages should be dicts, but got ", message.dump());
    Json cleaned = Json::object();
    for (auto it = message.begin(); it != message.end(); ++it) {
      if (!it.value().is_null()) cleaned[it.key()] = it.value();
    }
    messages.push_back(alias_reasoning(cleaned));
  }
  if (!in.extra_context.is_null() && !in.extra_context.is_object()) fail("chat template kwargs must be a JSON object");

  Json context = special_tokens_;
  if (in.extra_context.is_object()) {
    for (auto it = in.extra_context.begin(); it != in.extra_context.end(); ++it) {
      for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt"}) {
        if (it.key() == reserved) fail("got multiple values for keyword argument '", reserved, "'");
      }
      context[it.key()] = it.value();
    }
  }
  context["messages"] = std::move(messages);
  context["tools"] = in.tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = in.add_generation_prompt;

  jinja::RenderOptions options;
  options.now = in.now;
  return select(!in.tools.is_null()).compiled.render(context, options);
}

Json read_special_tokens(const std::string& dir) {
  fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(config_path)) {
    if (!fs::is_directory(dir)) fail("tokenizer directory '", dir, "' does not exist");
    return Json::object();
  }
  Json config;
  try {
    config = Json::parse(read_file(config_path));
  } catch (const Json::exception& e) {
    fail("cannot parse '", config_path.string(), "': ", e.what());
  }
  if (!config.is_object()) fail("'", config_path.string(), "' is not a JSON object");
  return special_tokens_from_config(config);
}

std::tm parse_datetime(const std::string& text) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char sep = 0;
  int n = std::sscanf(text.c_str(), "%d-%d-%d%c%d:%d:%d", &y, &mo, &d, &sep, &h, &mi, &s);
  if (n != 3 && n != 7) fail("bad date '", text, "': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS");
  if (n == 7 && sep != 'T' && sep != ' ') fail("bad date '", text, "': expected 'T' or ' ' between date and time");
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60) {
    fail("bad date '", text, "': field out of range");
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  std::tm normalized = tm;
  timegm(&normalized);  // fills in weekday / day of year
  normalized.tm_isdst = 0;
  return normalized;
}

}  // namespace moeforge::chat
