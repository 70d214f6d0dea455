#include "gguf/gguf_vocab.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "gguf/gguf_special_tokens.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

using nlohmann::json;

// llama.cpp token types (gguf TokenType).
enum : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

constexpr uint64_t kMaxTokenizerBytes = 512ull << 20;

// The split patterns whose llama.cpp pre-tokenizer is known (llama-vocab.cpp's regex sets).
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// tokenizer.ggml.pre: the llama.cpp pre-tokenizer that splits text as tokenizer.json's does. The
// converter identifies it by hashing a test string's token ids; we read the pattern itself, which
// gives the same names for the tokenizers it knows (a Llama-3 tokenizer with ignore_merges hashes
// as "smaug-bpe", without as "llama-bpe") and also covers retrained vocabularies of the same kind.
std::string pre_tokenizer_name(const json& tokenizer, const GgufVocabOptions& options, const std::string& file) {
  const json pre = tokenizer.value("pre_tokenizer", json());
  std::vector<json> parts;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const auto& p : pre.value("pretokenizers", json::array())) parts.push_back(p);
  } else if (pre.is_object()) {
    parts.push_back(pre);
  }
  std::string pattern;
  bool byte_level_regex = false, byte_level = false, other = false;
  for (const auto& p : parts) {
    const std::string type = p.value("type", "");
    if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex") && pattern.empty()) {
      pattern = p["pattern"]["Regex"].get<std::string>();
    } else if (type == "ByteLevel") {
      byte_level = true;
      byte_level_regex = p.value("use_regex", true);
    } else {
      other = true;
    }
  }
  const bool ignore_merges = tokenizer["model"].value("ignore_merges", false);
  if (!other && byte_level && !byte_level_regex) {
    if (pattern == kLlama3Pattern) return ignore_merges ? "smaug-bpe" : "llama-bpe";
    if (pattern == kQwen2Pattern) return "qwen2";
    if (pattern == kO200kPattern) return "gpt-4o";
  }
  if (!other && byte_level && byte_level_regex && pattern.empty()) return options.plain_byte_level_pre;
  fail(file, ": its pre-tokenizer (", pre.dump().substr(0, 160),
       ") has no llama.cpp equivalent known to export-gguf (known: the Llama-3, Qwen2 and o200k split "
       "patterns with ByteLevel, or ByteLevel with its GPT-2 regex)");
}

bool looks_special(const std::string& t) {
  auto wrapped = [&t](const std::string& open, const std::string& close) {
    return t.size() >= open.size() + close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || wrapped("<unused", ">");
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) text.replace(pos, from.size(), to);
  return text;
}

struct AddedToken {
  std::string content;
  bool special = false;
};

std::map<int64_t, AddedToken> added_tokens_of(const json& tokenizer) {
  std::map<int64_t, AddedToken> out;
  for (const auto& t : tokenizer.value("added_tokens", json::array()))
    out[t.at("id").get<int64_t>()] = AddedToken{t.at("content").get<std::string>(), t.value("special", false)};
  return out;
}

// Byte-level BPE (GPT-2 style): every id below vocab_size, [PADi] where the tokenizer has none.
void add_gpt2_vocab(const json& tokenizer, const GgufVocabOptions& options, const std::string& file,
                    GgufMetadata& metadata) {
  std::map<int64_t, std::string> by_id;
  for (const auto& [text, id] : tokenizer["model"]["vocab"].items()) by_id[id.get<int64_t>()] = text;
  // Added tokens by content (a content listed under two ids takes the flag of the higher id).
  std::map<std::string, bool> special_of;
  for (const auto& [id, token] : added_tokens_of(tokenizer)) {
    by_id[id] = token.content;
    special_of[token.content] = token.special;
  }
  const int64_t vocab_size = options.vocab_size > 0 ? options.vocab_size : static_cast<int64_t>(by_id.size());
  if (!by_id.empty() && by_id.rbegin()->first >= vocab_size)
    fail(file, ": token id ", by_id.rbegin()->first, " is beyond the model's vocab_size ", vocab_size,
         " (config.json); llama.cpp needs every token to have an embedding row");
  const std::string pre = pre_tokenizer_name(tokenizer, options, file);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(vocab_size);
  types.reserve(vocab_size);
  for (int64_t i = 0; i < vocab_size; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens.push_back(cat("[PAD", i, "]"));
      types.push_back(kUnused);
      continue;
    }
    std::string token = it->second;
    if (auto added = special_of.find(token); added != special_of.end()) {
      if (added->second || looks_special(token)) {
        types.push_back(kControl);
      } else {
        token = replace_all(token, "\xE2\x96\x81", " ");  // pre-normalised user-defined spaces
        types.push_back(kUserDefined);
      }
    } else {
      types.push_back(kNormal);
    }
    tokens.push_back(std::move(token));
  }
  metadata.set("tokenizer.ggml.model", std::string("gpt2"));
  metadata.set("tokenizer.ggml.pre", pre);
  metadata.set("tokenizer.ggml.tokens", std::move(tokens));
  metadata.set("tokenizer.ggml.token_type", std::move(types));
}

// The ids of the tokens transformers lists as all_special_tokens: the *_token fields of
// tokenizer_config.json and its additional/extra special tokens.
std::set<int64_t> special_ids_of(const json& tc, const std::map<std::string, int64_t>& vocab) {
  std::set<int64_t> out;
  auto add = [&](const json& entry) {
    std::string content;
    if (entry.is_string()) content = entry.get<std::string>();
    else if (entry.is_object() && entry.contains("content") && entry["content"].is_string()) content = entry["content"].get<std::string>();
    else return;
    auto it = vocab.find(content);
    if (it != vocab.end()) out.insert(it->second);
  };
  if (!tc.is_object()) return out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
    if (tc.contains(key)) add(tc[key]);
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"})
    if (tc.contains(key) && tc[key].is_array())
      for (const auto& entry : tc[key]) add(entry);
  return out;
}

bool is_byte_token(const std::string& t) {
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
         std::isxdigit(static_cast<unsigned char>(t[4]));
}

// SentencePiece-style BPE in tokenizer.json (byte fallback, "▁" pieces): the converter's
// LlamaHfVocab, scores -1000 for every token as it writes them.
size_t add_llama_vocab(const json& tokenizer, const json& tc, GgufMetadata& metadata) {
  std::map<std::string, int64_t> vocab;
  std::map<int64_t, std::string> base;
  for (const auto& [text, id] : tokenizer["model"]["vocab"].items()) {
    vocab[text] = id.get<int64_t>();
    base[id.get<int64_t>()] = text;
  }
  const int64_t base_size = static_cast<int64_t>(base.size());
  const auto added = added_tokens_of(tokenizer);
  for (const auto& [id, token] : added) vocab.emplace(token.content, id);
  const std::set<int64_t> special = special_ids_of(tc, vocab);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t id = 0; id < base_size; ++id) {
    auto it = base.find(id);
    std::string text = it != base.end() ? it->second : added.count(id) ? added.at(id).content : std::string();
    types.push_back(is_byte_token(text) ? kByte : special.count(id) ? kControl : kNormal);
    tokens.push_back(std::move(text));
  }
  for (const auto& [id, token] : added) {
    if (id < base_size) continue;
    auto it = vocab.find(token.content);
    const bool is_special = it != vocab.end() && special.count(it->second);
    types.push_back(is_special ? (is_byte_token(token.content) ? kByte : kControl) : kUserDefined);
    tokens.push_back(token.content);
  }
  const size_t n = tokens.size();
  metadata.set("tokenizer.ggml.model", std::string("llama"));
  metadata.set("tokenizer.ggml.pre", std::string("default"));
  metadata.set("tokenizer.ggml.tokens", std::move(tokens));
  metadata.set("tokenizer.ggml.scores", std::vector<float>(n, -1000.0f));
  metadata.set("tokenizer.ggml.token_type", std::move(types));
  return n;
}

}  // namespace

void add_gguf_vocab(const std::filesystem::path& model_dir, const GgufVocabOptions& options, GgufMetadata& metadata) {
  const auto tokenizer_path = model_dir / "tokenizer.json";
  const std::string file = tokenizer_path.string();
  if (!std::filesystem::is_regular_file(tokenizer_path))
    fail(model_dir.string(), ": no tokenizer.json; a GGUF file carries its tokenizer, so export-gguf needs one");
  const json tokenizer = read_json_file(tokenizer_path, kMaxTokenizerBytes);
  const json model = tokenizer.value("model", json::object());
  if (model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object())
    fail(file, ": model type '", model.value("type", "?"), "' is not supported by export-gguf (BPE only)");
  json tc, config;
  if (std::filesystem::is_regular_file(model_dir / "tokenizer_config.json")) tc = read_json_file(model_dir / "tokenizer_config.json");
  if (std::filesystem::is_regular_file(model_dir / "config.json")) config = read_json_file(model_dir / "config.json");
  if (options.write_space_prefix && tc.is_object() && tc.contains("add_prefix_space") && tc["add_prefix_space"].is_boolean())
    metadata.set("tokenizer.ggml.add_space_prefix", tc["add_prefix_space"].get<bool>());
  const json decoder = tokenizer.value("decoder", json());
  const bool spm_like = model.value("byte_fallback", false) && decoder.is_object() && decoder.value("type", "") == "Sequence";
  if (options.allow_llama_spm && spm_like) {
    const size_t n = add_llama_vocab(tokenizer, tc, metadata);
    add_gguf_special_tokens(model_dir, tokenizer, tc, config, static_cast<int64_t>(n), false, metadata);
    return;
  }
  add_gpt2_vocab(tokenizer, options, file, metadata);
  add_gguf_special_tokens(model_dir, tokenizer, tc, config, 0, true, metadata);
}

}  // namespace moeforge
