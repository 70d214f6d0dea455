// The on-disk format of a teacher cache (`moeforge teacher-cache`, docs/TRAINING.md "Teacher caches"):
// CACHE/manifest.json (self-describing: teacher, tokenizer and data fingerprints, K, R, codec, layout)
// and CACHE/blocks-NNNNNN.bin files of `blocks_per_file` training blocks each (the last one short).
// Every block starts with an 8-byte XXH64 of its token ids (little-endian). A router record (per
// token and MoE layer) is the top-R expert ids bit-packed in ceil(log2 E) bits, their raw router
// logits (bf16) and the logsumexp of the other logits (bf16). The token part has two codecs:
//   "bf16" (fixed-size records; version 1's only codec): per token, the top-K ids bit-packed LSB first
//     in id_bits = ceil(log2 vocab) bits, their log-probabilities at T = 1 in bf16 (most likely
//     first), log(1 - sum p_K) in bf16 (-inf when K = vocab), then its router records.
//   "compact" (the default): the block's router records for all its tokens, then one bit stream of
//     its token records (teacher_cache_codec.h: ~2x smaller), padded to a byte. Blocks vary in size,
//     so each file ends with an index: uint64 offsets of its n blocks and of their end, the XXH64 of
//     each block's bytes (checked on every read), uint64 n and the 8 bytes "MFTCIDX1" (little-endian).
// Torch-free, so it can be read and fuzzed without libtorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moeforge::train {

enum class CacheCodec { Bf16, Compact };
CacheCodec parse_cache_codec(const std::string& name, const std::string& where);
const char* cache_codec_name(CacheCodec codec);

struct CacheManifest {
  static constexpr int kVersion = 2;  // version 1 caches (bf16 only) are read as well
  // Provenance and what a training run must match (each refused by name when it differs).
  std::string teacher_path, teacher_fingerprint;  // hex XXH64 of config.json + every shard's header and size
  int64_t teacher_vocab = 0;
  std::string tokenizer_xxh64;                    // of the tokenizer.json the data was tokenised with
  std::string data_spec, data_fingerprint, packing;
  int64_t block_size = 0, train_blocks = 0;
  uint64_t seed = 0;
  double validation_fraction = 0.0;
  // Contents.
  int64_t vocab = 0;         // ids stored are < vocab (the tokenizer's ids; a padded tail is left out)
  int64_t top_k = 0, router_top_k = 0, num_experts = 0;
  std::vector<int64_t> moe_layers;
  int64_t blocks_per_file = 0;
  CacheCodec codec = CacheCodec::Compact;

  int id_bits() const;
  int router_id_bits() const;
  int64_t router_bytes() const;       // one token's router records, all MoE layers
  int64_t bf16_token_bytes() const;   // one token's bf16-codec token part
  int64_t token_bytes() const;        // bf16: one whole token record; compact: its worst case
  int64_t block_bytes() const { return 8 + block_size * token_bytes(); }  // exact for bf16, a bound for compact
  int64_t num_files() const { return train_blocks == 0 ? 0 : (train_blocks + blocks_per_file - 1) / blocks_per_file; }
  int64_t blocks_in_file(int64_t file) const;
  std::string file_name(int64_t file) const;  // "blocks-000003.bin"

  nlohmann::json to_json() const;
  nlohmann::json codec_json() const;   // descriptive, for readers of the file
  nlohmann::json layout_json() const;
  // Throws moeforge::Error naming `where` and the field on anything malformed.
  static CacheManifest from_json(const nlohmann::json& j, const std::string& where);
};

// Bits for ids in [0, n): ceil(log2 n), at least 1.
int bits_for(int64_t n);
// Packs/unpacks `count` values of `bits` bits LSB first.
void pack_bits(const int64_t* values, int64_t count, int bits, uint8_t* out);
void unpack_bits(const uint8_t* in, int64_t count, int bits, int64_t* values);
uint16_t float_to_bf16(float f);  // round to nearest even (NaN kept a NaN)
float bf16_to_float(uint16_t b);

// Where the blocks of one blocks file are: byte offsets (n + 1 entries, the last where the blocks
// end) and, compact only, each block's XXH64.
struct BlockIndex {
  std::vector<uint64_t> offsets, checksums;
  bool empty() const { return offsets.empty(); }
};
// From the file's bytes; empty with `why` set when the file is incomplete or damaged.
BlockIndex read_block_index(const CacheManifest& m, int64_t file, const uint8_t* data, uint64_t size, std::string* why);
// The index that ends a compact blocks file.
std::vector<uint8_t> block_index_bytes(const BlockIndex& index);

// "what the cache has" vs "what this run needs", one line per field that differs.
std::vector<std::string> manifest_differences(const CacheManifest& cache, const CacheManifest& run);

}  // namespace moeforge::train
