// Dataset: what training, stats and eval read. Opens a `--data` spec, tokenises each file once into
// the token cache, splits documents into train/validation, and packs them into fixed-length blocks.
//
//   moeforge::data::DataOptions o;          // block_size, validation_fraction, seed, ...
//   auto ds = moeforge::data::Dataset::open("code.jsonl:0.4,prose.jsonl:0.6", "tok_dir", o);
//   moeforge::data::Block b = ds.block(Split::Validation, 0);   // ids, loss_mask, domain
//   moeforge::data::BatchIterator it(ds, Split::Train, {.batch_size = 8, .seed = 1});
//
// Packing. Documents are grouped by (source file, domain); within a group each document's tokens
// are followed by EOS and the groups' streams are cut into blocks of block_size tokens, so every
// block holds one domain (Block::domain). PackMode::Concat lets a document run on into the next
// block (pretraining); PackMode::PerDocument starts every document in a fresh block (SFT). The
// last block of a group is padded (pad id, else EOS) with loss_mask 0.
//
// Loss mask. loss_mask[t] == 1 iff ids[t] is a training *target* (Hugging Face labels convention:
// labels[t] = ids[t] where the mask is 1, else -100; the model shifts, so position t-1 predicts t).
// 0 for padding, and for non-assistant tokens of chat records when assistant_only (the EOS after
// such a record is 0 too). Text documents train on every token and their EOS.
//
// Validation split: per (file, domain) group, round(fraction * docs) documents (at least 1 when the
// group has 2+ documents and fraction > 0), chosen by a seeded permutation of the documents; the
// choice depends only on the seed, the file name, the domain and the document count.
//
// Mixtures: weights (`a.jsonl:0.4,b.jsonl:0.6`) apply per spec entry in blocks (~tokens); see
// Dataset::epoch_order. Without weights each epoch visits every train block once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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

enum class Split : uint8_t { Train, Validation };
enum class PackMode : uint8_t { Concat, PerDocument };
const char* to_string(Split split);
const char* to_string(PackMode mode);
PackMode parse_pack_mode(const std::string& text);  // "concat" | "per-document"

struct DataOptions {
  int64_t block_size = 512;            // tokens per block (sequence length)
  double validation_fraction = 0.05;   // of each (file, domain) group's documents, in [0, 1)
  uint64_t seed = 0;                   // validation choice and document order before packing
  PackMode packing = PackMode::Concat;
  bool shuffle_documents = true;       // seeded document order before packing (train split only)
  RecordOptions records;               // fields, doc_sep, strict, bad-record examples kept
  // Skipped (bad) records are never silent: above this share of all records open() fails naming the
  // first few by file:line; below it (and above 0) it warns with them on stderr unless !warn_bad_records.
  // A data set whose every record is bad always fails, with the reason.
  double max_bad_fraction = 0.01;
  bool warn_bad_records = true;
  bool assistant_only = true;          // chat records: loss only on assistant turns
  bool add_bos = false;                // prepend BOS (when the tokenizer has one) to every document
  std::filesystem::path cache_dir;     // empty: default_cache_dir() ($XDG_CACHE_HOME/moeforge, ...)
  // Identity of tokenizer + chat template in cache keys; empty: tokenizer_fingerprint(). The
  // directory overload of open() sets it from the hash of the tokenizer files.
  std::string tokenizer_key;
  // Renders chat records; nullptr: chat records are bad records. The directory overload loads the
  // tokenizer directory's template when it has one.
  std::shared_ptr<const chat::ChatTemplate> chat_template;
  std::optional<int32_t> eos_id;       // overrides the tokenizer's EOS (required if it has none)
  std::optional<int32_t> pad_id;       // overrides the tokenizer's PAD (default: PAD, else EOS)
};

struct Block {
  std::vector<int32_t> ids;        // [block_size]
  std::vector<uint8_t> loss_mask;  // [block_size]; 1 = ids[t] is a training target
  int32_t domain = 0;              // index into Dataset::domains()
  int32_t entry = 0;               // index of the --data spec entry it came from (mixture member)
  int32_t num_real = 0;            // tokens before padding (ids[num_real..] are padding)
};

struct SourceReport {
  std::string path, entry;
  double weight = -1.0;  // mixture weight of its entry; < 0 = natural
  bool cached = false;   // token file was already in the cache
  size_t records = 0, bad_records = 0, documents = 0;
  uint64_t tokens = 0;   // document tokens + one EOS each (+ BOS when add_bos)
  size_t train_docs = 0, validation_docs = 0;
};

struct DomainReport {
  std::string name;
  size_t train_docs = 0, validation_docs = 0;
  uint64_t train_tokens = 0, validation_tokens = 0;      // incl. EOS, excl. padding
  uint64_t train_targets = 0, validation_targets = 0;    // tokens with loss_mask 1
  size_t train_blocks = 0, validation_blocks = 0;
};

struct DataReport {
  int64_t block_size = 0;
  std::vector<SourceReport> sources;
  std::vector<DomainReport> domains;
  BadRecordLog bad_records;            // over all sources (examples: first 20 with file:line)
  std::vector<std::string> entries;    // spec entries, in order
  std::vector<double> entry_share;     // fraction of each epoch's train blocks from each entry
  size_t train_blocks = 0, validation_blocks = 0;
  nlohmann::json to_json() const;
  std::string to_text() const;         // a few human-readable lines (CLI)
};

class Dataset {
 public:
  // `tokenizer` encodes; options.chat_template renders chat records. Throws moeforge::Error for a
  // bad spec, an unreadable file, a tokenizer without EOS (and no options.eos_id), or any bad
  // record when options.records.strict.
  static Dataset open(const std::string& spec, const tokenizer::Tokenizer& tokenizer, DataOptions options);
  // Loads tokenizer.json (+ tokenizer_config.json's chat template) from `tokenizer_dir`; cache keys
  // use the hash of those files.
  static Dataset open(const std::string& spec, const std::filesystem::path& tokenizer_dir, DataOptions options);

  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  ~Dataset();

  int64_t block_size() const;
  size_t num_blocks(Split split) const;
  // Block `index` of the split in natural (packed) order. Cheap: reads the memory-mapped cache.
  Block block(Split split, size_t index) const;
  // Writes block `index` into caller buffers of block_size elements (no allocation); returns the
  // block's domain.
  int32_t fill_block(Split split, size_t index, int32_t* ids, uint8_t* loss_mask) const;
  int32_t block_domain(Split split, size_t index) const;

  // Domain names, sorted; Block::domain indexes this.
  const std::vector<std::string>& domains() const;
  // Spec entries ("code.jsonl:0.4" -> "code.jsonl"); Block::entry indexes this.
  const std::vector<std::string>& entries() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  const DataReport& report() const;

  // Block indices of one epoch. Validation: natural order, every block once (shuffle ignored).
  // Train without weights: every block once, seeded shuffle of (seed, epoch) when shuffle.
  // Train with weights: each entry gets round(share * N) of the N = num_blocks(Train) slots
  // (largest remainder), drawn from the entry's blocks in seeded cycles that continue across
  // epochs (a small entry repeats, a large one is subsampled and resumes next epoch).
  std::vector<uint32_t> epoch_order(Split split, uint64_t epoch, uint64_t seed, bool shuffle = true) const;

 private:
  Dataset();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Identity of the tokenizer files in `dir` (tokenizer.json, tokenizer_config.json,
// chat_template.jinja) for cache keys.
std::string tokenizer_dir_key(const std::filesystem::path& dir);

}  // namespace moeforge::data
