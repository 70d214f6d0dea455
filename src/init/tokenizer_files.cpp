// Byte-level BPE support: GPT-2 pre-tokenisation (PCRE2), the byte -> unicode alphabet, training
// text reading, and the Hugging Face tokenizer.json / tokenizer_config.json writers.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <filesystem>

#include "common/error.h"
#include "data/data_spec.h"
#include "init/bpe_trainer.h"
#include "io/atomic_file.h"

namespace moeforge::init {
namespace {

// GPT-2's pattern, as Hugging Face's ByteLevel pre-tokenizer uses it.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Gpt2Regex {
 public:
  Gpt2Regex() {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
    if (!code_) fail("internal: GPT-2 regex does not compile (PCRE2 error ", error, ")");
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
  }
  ~Gpt2Regex() { pcre2_code_free(code_); }
  pcre2_code* code() const { return code_; }

 private:
  pcre2_code* code_ = nullptr;
};

std::string codepoint_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
  else out += static_cast<char>(0xE0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
       out += static_cast<char>(0x80 | (cp & 0x3F));
  return out;
}

const std::vector<std::string>& byte_table() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[b] = codepoint_utf8(printable ? b : next++);
    }
    return t;
  }();
  return table;
}

const char* kChatMl =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

}  // namespace

std::string byte_level_encode(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += byte_table()[c];
  return out;
}

std::vector<std::string> gpt2_pre_tokenize(const std::string& text) {
  std::vector<std::string> pieces = gpt2_split(text);
  for (std::string& p : pieces) p = byte_level_encode(p);
  return pieces;
}

std::vector<std::string> gpt2_split(const std::string& text) {
  static const Gpt2Regex regex;
  std::vector<std::string> out;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex.code(), nullptr);
  PCRE2_SIZE start = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (start < text.size()) {
    int rc = pcre2_match(regex.code(), subject, text.size(), start, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc < 0) break;  // nothing more matches (cannot happen: \s+ and the classes cover everything)
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    if (ov[1] == ov[0]) {
      ++start;
      continue;
    }
    out.push_back(text.substr(ov[0], ov[1] - ov[0]));
    start = ov[1];
  }
  pcre2_match_data_free(match);
  return out;
}

std::vector<std::string> read_training_texts(const std::string& spec, const BpeTrainOptions& options) {
  std::vector<std::string> texts;
  uint64_t bytes = 0;
  for (const data::SourceSpec& source : data::parse_data_spec(spec)) {
    data::RecordReader reader(source, options.records);
    data::Record r;
    while (reader.next(r)) {
      std::string text = r.text;
      if (r.kind == data::Record::Kind::Chat)
        for (const auto& m : r.messages) {
          if (!text.empty()) text += "\n";
          if (m.contains("content") && m["content"].is_string()) text += m["content"].get<std::string>();
        }
      bytes += text.size();
      texts.push_back(std::move(text));
      if (options.max_bytes && bytes >= options.max_bytes) return texts;
    }
  }
  return texts;
}

std::string tokenizer_json(const BpeModelData& model) {
  using Json = nlohmann::ordered_json;
  Json added = Json::array();
  for (size_t i = 0; i < model.special_tokens.size(); ++i)
    added.push_back({{"id", i}, {"content", model.special_tokens[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  Json vocab = Json::object();
  for (size_t i = 0; i < model.vocab.size(); ++i) vocab[model.vocab[i]] = i;
  Json merges = Json::array();
  for (const auto& [a, b] : model.merges) merges.push_back(Json::array({a, b}));
  Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  Json post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  Json bpe = {{"type", "BPE"},           {"dropout", nullptr},           {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},       {"byte_fallback", false},      {"ignore_merges", false},
              {"vocab", vocab},          {"merges", merges}};
  Json root = {{"version", "1.0"},      {"truncation", nullptr}, {"padding", nullptr},
               {"added_tokens", added}, {"normalizer", nullptr}, {"pre_tokenizer", byte_level},
               {"post_processor", post}, {"decoder", byte_level}, {"model", bpe}};
  return root.dump(2, ' ', false) + "\n";
}

std::string tokenizer_config_json(const BpeModelData& model, const BpeTrainOptions& options) {
  using Json = nlohmann::ordered_json;
  Json decoder = Json::object();
  for (size_t i = 0; i < model.special_tokens.size(); ++i)
    decoder[std::to_string(i)] = {{"content", model.special_tokens[i]}, {"lstrip", false}, {"normalized", false},
                                  {"rstrip", false},  {"single_word", false}, {"special", true}};
  auto token = [](const std::string& t) { return t.empty() ? Json(nullptr) : Json(t); };
  Json config = {{"added_tokens_decoder", decoder}, {"bos_token", token(options.bos_token)},
                 {"eos_token", token(options.eos_token)}, {"pad_token", token(options.pad_token)},
                 {"unk_token", nullptr}, {"add_bos_token", false}, {"add_eos_token", false},
                 {"clean_up_tokenization_spaces", false}, {"model_max_length", options.model_max_length},
                 {"tokenizer_class", "PreTrainedTokenizerFast"}};
  bool chatml = false, start = false, end = false;
  for (const auto& s : model.special_tokens) start |= s == "<|im_start|>", end |= s == "<|im_end|>";
  chatml = options.chat_template && start && end;
  if (chatml) config["chat_template"] = kChatMl;
  return config.dump(2, ' ', false) + "\n";
}

void write_tokenizer(const std::filesystem::path& out_dir, const BpeModelData& model, const BpeTrainOptions& options) {
  std::filesystem::create_directories(out_dir);
  write_file_atomic(out_dir / "tokenizer.json", tokenizer_json(model));
  write_file_atomic(out_dir / "tokenizer_config.json", tokenizer_config_json(model, options));
}

}  // namespace moeforge::init
