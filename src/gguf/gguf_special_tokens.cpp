#include "gguf/gguf_special_tokens.h"

#include <cctype>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

using nlohmann::json;

// Python's `value == text` for a JSON value that may be a string, an object or null.
bool same(const json& value, const std::string& text) { return value.is_string() && value.get<std::string>() == text; }
bool truthy(const json& value) {
  if (value.is_null()) return false;
  if (value.is_string()) return !value.get<std::string>().empty();
  if (value.is_object() || value.is_array()) return !value.empty();
  if (value.is_boolean()) return value.get<bool>();
  return true;
}
json get_or_null(const json& object, const char* key) {
  return object.is_object() && object.contains(key) ? object[key] : json();
}
// `element.get('SpecialToken', {}).get('id')` of a template entry.
json special_id(const json& element) { return get_or_null(get_or_null(element, "SpecialToken"), "id"); }
json sequence_id(const json& element) { return get_or_null(get_or_null(element, "Sequence"), "id"); }

struct SpecialState {
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::vector<std::pair<std::string, int64_t>> ids;   // insertion order
  std::vector<std::pair<std::string, bool>> add;      // insertion order
  int64_t n_vocab = 0;

  bool has_add(const std::string& type) const {
    for (const auto& [t, v] : add) if (t == type) return true;
    return false;
  }
  void set_add(const std::string& type, bool value, bool only_if_absent) {
    for (auto& [t, v] : add)
      if (t == type) {
        if (!only_if_absent) v = value;
        return;
      }
    add.emplace_back(type, value);
  }
  void set_id(const std::string& type, const json& id) {
    if (!id.is_number_integer()) return;
    const int64_t value = id.get<int64_t>();
    if (value < 0) fail("invalid value for special token type ", type, ": ", value);
    if (n_vocab > 0 && value >= n_vocab) return;  // out of range: the converter skips it
    for (const auto& entry : ids) if (entry.first == type) return;
    ids.emplace_back(type, value);
  }
  bool has_type(const std::string& type) const {
    for (const auto& t : types) if (t == type) return true;
    return false;
  }
};

// TemplateProcessing: whether the single template starts with bos / ends with eos, and whether the
// pair template puts a separator between A and B (SpecialVocab's "crude parsing").
void read_template(const json& processor, json& tc, bool have_tc, json& special_bos, json& special_cls,
                   json& special_eos, json& special_sep, SpecialState& state) {
  const json single = processor.value("single", json::array());
  json pair = processor.value("pair", json::array());
  json special_first, special_last;
  if (single.size() > 1) {
    special_first = special_id(single.front());
    if (truthy(special_first)) {
      const std::string first = special_first.get<std::string>();
      if (!have_tc) {
        special_bos = special_first;
      } else if (!same(special_bos, first) && !same(special_cls, first)) {
        if (!truthy(special_bos)) tc["bos_token"] = special_bos = special_first;
        if (!truthy(special_cls)) tc["cls_token"] = special_cls = special_first;
      }
      state.set_add("bos", same(special_bos, first) || same(special_cls, first), false);
    }
    special_last = special_id(single.back());
    if (truthy(special_last)) {
      const std::string last = special_last.get<std::string>();
      if (!have_tc) {
        special_eos = special_last;
      } else if (!same(special_eos, last)) {
        if (!state.has_type("eot")) {
          state.types.push_back("eot");
          tc["eot_token"] = special_eos;
        } else if (!state.has_type("eom")) {
          state.types.push_back("eom");
          tc["eom_token"] = special_eos;
        }
        tc["eos_token"] = special_eos = special_last;
      }
      state.set_add("eos", same(special_eos, last), false);
    }
  }
  if (pair.empty()) return;
  size_t start = truthy(special_first) && special_id(pair.front()) == special_first ? 1 : 0;
  size_t stop = pair.size();
  if (truthy(special_last) && special_id(pair.back()) == special_last) stop = pair.size() - 1;
  if (start >= stop) return;
  json middle(json::value_t::array);
  for (size_t i = start; i < stop; ++i) middle.push_back(pair[i]);
  if (!(same(sequence_id(middle.front()), "A") && same(sequence_id(middle.back()), "B"))) return;
  if (middle.size() <= 2) return;
  json inner(json::value_t::array);
  for (size_t i = 1; i + 1 < middle.size(); ++i) inner.push_back(middle[i]);
  bool add_sep = false;
  const json entry = special_id(inner[0]);
  if (truthy(entry)) {
    const std::string e = entry.get<std::string>();
    if ((same(special_sep, e) || same(special_eos, e)) && !truthy(special_last)) add_sep = true;
  }
  if (inner.size() == 2) {
    const json second = special_id(inner[1]);
    if (truthy(second)) {
      const std::string e = second.get<std::string>();
      if (same(special_sep, e) || same(special_eos, e)) add_sep = true;
    }
  }
  state.set_add("sep", add_sep, false);
  if (add_sep && !truthy(special_sep) && have_tc) tc["sep_token"] = special_eos;
}

// Non-alphanumeric characters of a template name become '_' (gguf-py's add_chat_template).
std::string template_key_name(const std::string& name) {
  std::string out = name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

void add_chat_template(const json& value, GgufMetadata& metadata) {
  if (value.is_string()) {
    metadata.set("tokenizer.chat_template", value.get<std::string>());
    return;
  }
  if (!value.is_array()) return;
  std::string default_template;
  bool has_default = false;
  std::vector<std::string> names;
  for (const auto& choice : value) {
    const std::string name = template_key_name(choice.value("name", std::string()));
    if (name.empty() || !choice.contains("template") || !choice["template"].is_string()) continue;
    if (name == "default") {
      default_template = choice["template"].get<std::string>();
      has_default = true;
    } else {
      names.push_back(name);
      metadata.set("tokenizer.chat_template." + name, choice["template"].get<std::string>());
    }
  }
  if (!names.empty()) metadata.set("tokenizer.chat_templates", names);
  if (has_default) metadata.set("tokenizer.chat_template", default_template);
}

// BPE merges as "left right"; pairs given as lists have their spaces written as U+0120 + 256
// offsets the way gguf-py does (chr(ord(' ') + 256)).
std::vector<std::string> merges_of(const json& tokenizer) {
  std::vector<std::string> out;
  const json merges = get_or_null(get_or_null(tokenizer, "model"), "merges");
  if (!merges.is_array()) return out;
  out.reserve(merges.size());
  for (const auto& merge : merges) {
    if (merge.is_string()) {
      out.push_back(merge.get<std::string>());
      continue;
    }
    if (!merge.is_array() || merge.size() != 2) fail("tokenizer.json: unknown merges format");
    std::string joined;
    for (int part = 0; part < 2; ++part) {
      if (part) joined += ' ';
      for (char c : merge[part].get<std::string>()) joined += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
    }
    out.push_back(std::move(joined));
  }
  return out;
}

const char* id_key(const std::string& type) {
  if (type == "bos") return "tokenizer.ggml.bos_token_id";
  if (type == "eos") return "tokenizer.ggml.eos_token_id";
  if (type == "unk") return "tokenizer.ggml.unknown_token_id";
  if (type == "sep") return "tokenizer.ggml.seperator_token_id";  // sic: llama.cpp's spelling
  if (type == "pad") return "tokenizer.ggml.padding_token_id";
  if (type == "mask") return "tokenizer.ggml.mask_token_id";
  if (type == "eot") return "tokenizer.ggml.eot_token_id";
  if (type == "eom") return "tokenizer.ggml.eom_token_id";
  return nullptr;  // cls: llama.cpp has no key for it
}

const char* add_key(const std::string& type) {
  if (type == "bos") return "tokenizer.ggml.add_bos_token";
  if (type == "eos") return "tokenizer.ggml.add_eos_token";
  if (type == "sep") return "tokenizer.ggml.add_sep_token";
  return nullptr;
}

}  // namespace

void add_gguf_special_tokens(const std::filesystem::path& model_dir, const json& tokenizer, json tc,
                             const json& config, int64_t n_vocab, bool merges, GgufMetadata& metadata) {
  SpecialState state;
  state.n_vocab = n_vocab;
  const bool have_tc = tc.is_object();
  if (!have_tc) tc = json::object();
  json special_bos = get_or_null(tc, "bos_token"), special_cls = get_or_null(tc, "cls_token");
  json special_eos = get_or_null(tc, "eos_token"), special_sep = get_or_null(tc, "sep_token");
  if (!truthy(special_bos) && truthy(special_cls) && have_tc) tc["bos_token"] = special_bos = special_cls;
  if (!truthy(special_eos) && truthy(special_sep) && have_tc) tc["eos_token"] = special_eos = special_sep;
  const json post = get_or_null(tokenizer, "post_processor");
  if (truthy(post)) {
    const json processors = post.contains("processors") ? post["processors"] : json::array({post});
    for (const auto& processor : processors) {
      const std::string type = processor.value("type", std::string());
      if (type == "ByteLevel") {
        state.set_add("bos", false, true);
        state.set_add("eos", false, true);
      } else if (type == "RobertaProcessing") {
        state.set_add("bos", true, false);
        state.set_add("eos", true, false);
        state.set_add("sep", true, false);
        if (!truthy(special_cls) && have_tc) {
          const json cls = get_or_null(processor, "cls");
          tc["cls_token"] = special_cls = cls.is_array() && !cls.empty() ? cls[0] : special_bos;
        }
        if (!truthy(special_sep) && have_tc) {
          const json sep = get_or_null(processor, "sep");
          tc["sep_token"] = special_sep = sep.is_array() && !sep.empty() ? sep[0] : special_eos;
        }
      } else if (type == "TemplateProcessing") {
        read_template(processor, tc, have_tc, special_bos, special_cls, special_eos, special_sep, state);
      }
    }
  }
  if (merges) {
    std::vector<std::string> list = merges_of(tokenizer);
    if (!list.empty()) metadata.set("tokenizer.ggml.merges", std::move(list));
  }
  if (have_tc && !tc.empty()) {
    json chat_template = get_or_null(tc, "chat_template");
    if (chat_template.is_null()) {
      if (std::filesystem::is_regular_file(model_dir / "chat_template.jinja")) {
        chat_template = read_small_file(model_dir / "chat_template.jinja", 16ull << 20, "chat template");
      } else if (std::filesystem::is_regular_file(model_dir / "chat_template.json")) {
        chat_template = get_or_null(read_json_file(model_dir / "chat_template.json"), "chat_template");
      }
    }
    const json added = get_or_null(tokenizer, "added_tokens");
    for (size_t i = 0; i < state.types.size(); ++i) {
      const std::string type = state.types[i];
      const json add_entry = get_or_null(tc, ("add_" + type + "_token").c_str());
      if (add_entry.is_boolean()) state.set_add(type, add_entry.get<bool>(), true);
      const json entry = get_or_null(tc, (type + "_token").c_str());
      std::string content;
      if (entry.is_string()) {
        content = entry.get<std::string>();
      } else if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) {
        content = entry["content"].get<std::string>();
      } else {
        continue;
      }
      if (!added.is_array()) continue;
      for (const auto& token : added)
        if (token.is_object() && same(get_or_null(token, "content"), content)) {
          state.set_id(type, get_or_null(token, "id"));
          break;
        }
    }
    add_chat_template(chat_template, metadata);
  }
  if (config.is_object())
    for (const auto& type : state.types) {
      json id = get_or_null(config, (type + "_token_id").c_str());
      if (id.is_null() && config.contains("text_config")) id = get_or_null(config["text_config"], (type + "_token_id").c_str());
      state.set_id(type, id);
    }
  for (const auto& [type, id] : state.ids)
    if (const char* key = id_key(type)) metadata.set(key, static_cast<uint32_t>(id));
  for (const auto& [type, value] : state.add)
    if (const char* key = add_key(type)) metadata.set(key, value);
}

}  // namespace moeforge
