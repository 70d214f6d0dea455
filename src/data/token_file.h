// The token cache: each data file is tokenised once into a memory-mapped token file, keyed by
// tokenizer identity + file hash + the options that change its tokens, under a cache directory.
//
// File layout (little-endian): 64-byte header {magic "MFTOK01\n", num_docs, num_tokens,
// docs_offset, mask_offset (0 = no mask: every token trains), meta_offset, meta_size, 0};
// u32 tokens[num_tokens] at 64; DocEntry docs[num_docs]; u8 mask[num_tokens]; meta JSON
// {"source", "records", "domains", "bad_records", "key"}. Written to a temporary sibling and renamed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/data_spec.h"
#include "data/records.h"

namespace moeforge::chat {
class ChatTemplate;
}
namespace moeforge::tokenizer {
class Tokenizer;
}

namespace moeforge::data {

// Everything besides the file's bytes that changes its tokens (part of the cache key).
struct TokenizeSettings {
  RecordOptions records;
  bool assistant_only = true;  // chat records: loss only on assistant turns (needs a chat template)
  bool add_bos = false;        // prepend the tokenizer's BOS to every document
  std::string tokenizer_key;   // identity of the tokenizer and chat template (tokenizer_fingerprint)
};

class TokenFile {
 public:
  struct Doc {
    const uint32_t* ids = nullptr;
    const uint8_t* mask = nullptr;  // nullptr: every token is a training target
    uint32_t length = 0;            // tokens (no EOS; packing adds it)
    uint32_t domain = 0;            // index into domains()
    uint64_t line = 0;              // 1-based line of the record in its source
  };

  static std::shared_ptr<const TokenFile> open(const std::filesystem::path& path);
  ~TokenFile();

  size_t num_docs() const { return num_docs_; }
  uint64_t num_tokens() const { return num_tokens_; }
  Doc doc(size_t index) const;
  const std::vector<std::string>& domains() const { return domains_; }
  const BadRecordLog& bad_records() const { return bad_; }
  size_t records() const { return records_; }  // good records read (docs may be fewer: empty ones)
  const std::filesystem::path& path() const { return path_; }

 private:
  TokenFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> map_;
  std::filesystem::path path_;
  uint64_t num_docs_ = 0, num_tokens_ = 0;
  const uint32_t* tokens_ = nullptr;
  const uint8_t* docs_ = nullptr;
  const uint8_t* mask_ = nullptr;
  std::vector<std::string> domains_;
  BadRecordLog bad_;
  size_t records_ = 0;
};

// Cache key of a source under `settings`: hex of hash(format version, tokenizer key, file bytes,
// settings). The token file lives at cache_dir / "tokens" / (key + ".mftok").
std::string token_file_key(const SourceSpec& source, const TokenizeSettings& settings);

// Opens the cached token file of `source`, tokenising it first when absent (`*built` says which).
// Bad records fail at once when settings.records.strict (also when found in a cached file's log).
// Chat records need `chat_template`; without one they count as bad records.
std::shared_ptr<const TokenFile> load_or_build_token_file(const SourceSpec& source,
                                                          const tokenizer::Tokenizer& tokenizer,
                                                          const chat::ChatTemplate* chat_template,
                                                          const TokenizeSettings& settings,
                                                          const std::filesystem::path& cache_dir,
                                                          bool* built = nullptr);

// $MOEFORGE_CACHE_DIR, else $XDG_CACHE_HOME/moeforge, else $HOME/.cache/moeforge, else ./.cache/moeforge.
std::filesystem::path default_cache_dir();

// Identity of a tokenizer (every token string, special flags, bos/eos/pad, a probe encoding) and
// of a chat template (a probe conversation's render), as 16 hex digits.
std::string tokenizer_fingerprint(const tokenizer::Tokenizer& tokenizer, const chat::ChatTemplate* chat_template);

}  // namespace moeforge::data
