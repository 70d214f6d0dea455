// Tokenizer: loading tokenizer.json and running the pipeline (added tokens -> normalizer ->
// pre-tokenizer -> BPE -> post-processor, and ids -> tokens -> decoder).
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pieces.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<AddedVocabulary> added;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  void encode_into(std::string_view text, std::vector<int32_t>& ids, EncodeScratch& scratch) const;
};

namespace {

Json parse_json(std::string_view text, const std::string& label) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    fail(label, ": invalid JSON: ", e.what());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path.string(), "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("error reading '", path.string(), "'");
  return buffer.str();
}

// tokenizer_config.json names tokens as "text" or {"content": "text", ...}.
std::optional<std::string> config_token(const Json& config, const char* key, const JsonPath& at) {
  if (!has_value(config, key)) return std::nullopt;
  const Json& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) return get_string(v, "content", at.child(key));
  at.child(key).fail("expected a string or an object with 'content'");
}

}  // namespace

Tokenizer Tokenizer::from_json_string(std::string_view json, const std::string& label,
                                      std::string_view config_json) {
  Json spec = parse_json(json, label);
  JsonPath root{label, ""};
  if (!spec.is_object()) root.fail("expected a JSON object at the top level");

  auto impl = std::make_shared<Impl>();
  const Json& model = require(spec, "model", root);
  JsonPath model_at = root.child("model");
  std::string type = has_value(model, "type") ? get_string(model, "type", model_at) : "";
  if (type.empty() && has_value(model, "merges")) type = "BPE";  // older files omit the type
  if (type != "BPE")
    model_at.fail("unsupported model type '", type, "' (only BPE is supported)");
  impl->model = std::make_unique<BpeModel>(model, model_at);
  impl->normalizer = make_normalizer(spec.value("normalizer", Json()), root.child("normalizer"));
  impl->pre_tokenizer =
      make_pre_tokenizer(spec.value("pre_tokenizer", Json()), root.child("pre_tokenizer"));
  impl->post_processor =
      make_post_processor(spec.value("post_processor", Json()), root.child("post_processor"));
  impl->decoder = make_decoder(spec.value("decoder", Json()), root.child("decoder"));
  impl->added = std::make_unique<AddedVocabulary>(spec.value("added_tokens", Json()), *impl->model,
                                                  impl->normalizer.get(), root.child("added_tokens"));

  Tokenizer tokenizer;
  tokenizer.impl_ = impl;
  if (!config_json.empty()) {
    std::string config_label = (std::filesystem::path(label).parent_path() / "tokenizer_config.json").string();
    Json config = parse_json(config_json, config_label);
    JsonPath config_at{config_label, ""};
    if (!config.is_object()) config_at.fail("expected a JSON object at the top level");
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      auto name = config_token(config, key, config_at);
      if (!name) return std::nullopt;
      auto id = tokenizer.token_to_id(*name);
      if (!id) config_at.child(key).fail("token '", *name, "' is not in the vocabulary");
      return id;
    };
    tokenizer.bos_id_ = resolve("bos_token");
    tokenizer.eos_id_ = resolve("eos_token");
    tokenizer.pad_id_ = resolve("pad_token");
  }
  if (!tokenizer.bos_id_ && impl->post_processor) {  // e.g. Llama 2's template starts with <s>
    std::vector<int32_t> before, after;
    impl->post_processor->special_ids(before, after);
    if (!before.empty()) tokenizer.bos_id_ = before.front();
    if (!tokenizer.eos_id_ && !after.empty()) tokenizer.eos_id_ = after.back();
  }
  return tokenizer;
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  std::string config;
  std::filesystem::path config_path = path.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (path.filename() == "tokenizer.json" && std::filesystem::is_regular_file(config_path, ec))
    config = read_file(config_path);
  return from_json_string(read_file(path), path.string(), config);
}

Tokenizer Tokenizer::from_directory(const std::filesystem::path& dir) {
  std::filesystem::path file = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    fail("'", dir.string(), "' has no tokenizer.json");
  return from_file(file);
}

Tokenizer Tokenizer::load(const std::filesystem::path& file_or_dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(file_or_dir, ec)) return from_directory(file_or_dir);
  return from_file(file_or_dir);
}

void Tokenizer::Impl::encode_into(std::string_view text, std::vector<int32_t>& ids,
                                  EncodeScratch& scratch) const {
  std::vector<Segment> raw, normalized_segments;
  std::vector<Piece> pieces, words;
  std::string normalized_buffer;
  added->split(text, false, raw);
  for (const Segment& segment : raw) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    std::string_view normalized = apply_normalizer(
        normalizer.get(), text.substr(segment.start, segment.end - segment.start), normalized_buffer);
    normalized_segments.clear();
    if (added->has_normalized_tokens()) added->split(normalized, true, normalized_segments);
    else if (!normalized.empty()) normalized_segments.push_back({0, normalized.size(), -1});
    for (const Segment& part : normalized_segments) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      pieces.assign(1, Piece{normalized.substr(part.start, part.end - part.start),
                             segment.start == 0 && part.start == 0});
      const std::vector<Piece>* to_model = &pieces;
      if (pre_tokenizer) {
        words.clear();
        pre_tokenizer->apply(pieces, words, scratch);
        to_model = &words;
      }
      for (const Piece& word : *to_model) model->tokenize(word.text, ids);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) fail("text to encode is not valid UTF-8 (byte offset ", bad, ")");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  EncodeScratch scratch;
  impl_->encode_into(text, ids, scratch);
  if (impl_->post_processor) impl_->post_processor->process(ids, add_special_tokens);
  return ids;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(encode(t, add_special_tokens));
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* token = nullptr;
    if (const AddedToken* added = impl_->added->by_id(id)) token = &added->content;
    else token = impl_->model->id_to_token(id);
    if (!token) continue;
    if (skip_special_tokens && impl_->added->is_special(*token)) continue;
    tokens.push_back(*token);
  }
  std::string text;
  if (impl_->decoder) {
    impl_->decoder->decode_chain(tokens);
    for (const std::string& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) text += ' ';
      text += tokens[i];
    }
  }
  return text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added->token_to_id(token)) return id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* added = impl_->added->by_id(id)) return added->content;
  if (const std::string* token = impl_->model->id_to_token(id)) return *token;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* added = impl_->added->by_id(id);
  return added && added->special;
}

size_t Tokenizer::vocab_size() const {
  size_t bound = impl_->model->id_bound();
  for (const AddedToken& t : impl_->added->tokens())
    bound = std::max(bound, static_cast<size_t>(t.id) + 1);
  return bound;
}

}  // namespace moeforge::tokenizer
