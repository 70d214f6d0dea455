// A model directory as a set of named tensors (single model.safetensors or sharded with
// model.safetensors.index.json) plus its JSON files (config.json, generation_config.json, ...).
// Shards are opened lazily on first use; tensor bytes are zero-copy views into the mappings.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors_file.h"

namespace moeforge {

struct StoredTensor {
  const TensorInfo* info = nullptr;  // owned by `file`
  std::shared_ptr<const SafetensorsFile> file;
  ByteView bytes() const { return file->bytes(*info); }
};

class CheckpointStore {
 public:
  // `path` is a model directory or a single .safetensors file. Throws moeforge::Error on defects:
  // missing files, an index naming shards outside the directory ("../"), duplicated tensors,
  // a tensor the index places in a shard that lacks it.
  static std::shared_ptr<CheckpointStore> open(const std::filesystem::path& path);

  const std::filesystem::path& directory() const { return directory_; }
  // Every tensor name, sorted.
  const std::vector<std::string>& tensor_names() const { return names_; }
  bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
  // Throws "missing tensor 'X' in <dir>" when absent.
  StoredTensor tensor(const std::string& name) const;
  std::optional<StoredTensor> find(const std::string& name) const;
  // Shard file names (relative to directory()), in index order.
  const std::vector<std::string>& shard_files() const { return shard_files_; }
  uint64_t bytes_on_disk() const;  // sum of shard file sizes
  // `__metadata__` of the first shard (HF keeps {"format": "pt"} there).
  std::map<std::string, std::string> metadata() const;

  // JSON files beside the weights. has_json/read_json("config.json"); read_json throws naming the
  // file when it is missing or malformed.
  bool has_file(const std::string& relative_name) const;
  nlohmann::json read_json(const std::string& relative_name) const;

 private:
  std::shared_ptr<const SafetensorsFile> shard(size_t index) const;

  std::filesystem::path directory_;
  std::vector<std::string> shard_files_;
  std::map<std::string, size_t> shard_of_;  // tensor name -> shard index
  std::vector<std::string> names_;
  mutable std::mutex mutex_;
  mutable std::vector<std::shared_ptr<const SafetensorsFile>> shards_;
};

// A whole small file (configs, side files) with a size cap; errors name the file ("limit for KIND files").
std::string read_small_file(const std::filesystem::path& path, uint64_t max_bytes, const std::string& kind);

// Reads a JSON file with a size cap, throwing "<file>: <parse error>" on failure.
nlohmann::json read_json_file(const std::filesystem::path& path, uint64_t max_bytes = 64ull << 20);

}  // namespace moeforge
