// Offline teacher caches: `moeforge teacher-cache` runs the teacher once over a data set's training
// blocks and stores per token its top-K ids + log-probabilities + tail mass and, per MoE layer, its
// top-R router logits (format: teacher_cache_format.h); `train --teacher-cache` reads them back per
// batch, streaming from mapped files, so the teacher never enters training memory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/batch_iterator.h"
#include "data/dataset.h"
#include "train/distill.h"
#include "train/teacher_cache_format.h"

namespace moeforge {
class MappedFile;
}

namespace moeforge::train {

struct TeacherCacheOptions {
  std::filesystem::path teacher_dir, tokenizer_dir, out_dir, data_cache_dir;
  std::string data_spec;  // resolved (absolute paths)
  int64_t block_size = 0, top_k = 64, router_top_k = 0, batch_size = 4;
  uint64_t seed = 0;
  double validation_fraction = 0.0;
  std::string packing = "concat";
  int64_t shard_index = 0, shard_count = 1;  // --shard i/n: this process writes files f with f % n == i
  int64_t file_bytes = int64_t{1} << 30;      // size cap of one blocks file
  CacheCodec codec = CacheCodec::Compact;
  double max_bad_fraction = 0.01;             // the training recipe's (data::DataOptions)
  bool allow_long_seq = false;                // the training recipe's
  std::string device = "cpu";
  int local_ranks = 1;  // processes writing shards on this machine (they share its memory budget)
  bool progress = true;
};

struct TeacherCacheReport {
  int64_t files_written = 0, files_present = 0, files_missing = 0;  // missing: other shards' and not yet written
  int64_t tokens = 0, bytes = 0;
  double seconds = 0;
  CacheManifest manifest;
};

// Writes (or completes) the cache; files already complete are kept, so an interrupted run resumes.
TeacherCacheReport write_teacher_cache(const TeacherCacheOptions& options);

// A human-readable summary of a cache (manifest, sizes, completeness).
std::string inspect_teacher_cache(const std::filesystem::path& dir);

// Fingerprints shared by the writer and the trainer's checks.
std::string teacher_fingerprint(const std::filesystem::path& model_dir);
std::string tokenizer_hash(const std::filesystem::path& tokenizer_dir);
std::string data_fingerprint(const data::Dataset& dataset);
// The manifest fields a run over `dataset` (opened with `options`) must match.
CacheManifest run_manifest(const data::Dataset& dataset, const data::DataOptions& options, const std::filesystem::path& tokenizer_dir,
                           const std::string& data_spec, const std::string& packing);

class TeacherCacheReader {
 public:
  // Reads the manifest and checks every blocks file is complete; errors name the cache.
  explicit TeacherCacheReader(const std::filesystem::path& dir);
  ~TeacherCacheReader();
  const CacheManifest& manifest() const { return m_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The teacher's side of a batch ([B*T] rows, row-aligned with its ids), checking each block's ids
  // against the hash the cache stored for it.
  TeacherTokens lookup(const data::Batch& batch, bool with_router) const;

 private:
  std::filesystem::path dir_;
  CacheManifest m_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<BlockIndex> index_;  // per file
};

}  // namespace moeforge::train
