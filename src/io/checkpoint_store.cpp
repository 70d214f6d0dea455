#include "io/checkpoint_store.h"

#include "common/hf_cache.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge {
namespace fs = std::filesystem;

std::string read_small_file(const fs::path& path, uint64_t max_bytes, const std::string& kind) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail(path.string(), ": file not found");
  uint64_t size = fs::file_size(path, ec);
  if (ec) fail(path.string(), ": cannot read size: ", ec.message());
  if (size > max_bytes) fail(path.string(), ": ", size, " bytes exceeds the ", max_bytes, "-byte limit for ", kind, " files");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::json read_json_file(const fs::path& path, uint64_t max_bytes) {
  const std::string text = read_small_file(path, max_bytes, "JSON");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": invalid JSON (", e.what(), ")");
  }
}

namespace {

// A shard name from an index must be a plain relative path that stays inside the model directory.
void check_shard_name(const std::string& name, const fs::path& index_path) {
  fs::path relative(name);
  bool bad = name.empty() || relative.is_absolute() || name.find('\0') != std::string::npos;
  for (const auto& part : relative)
    if (part == "..") bad = true;
  if (bad) fail(index_path.string(), ": shard file name '", name, "' escapes the model directory");
}

}  // namespace

std::shared_ptr<CheckpointStore> CheckpointStore::open(const fs::path& path) {
  auto store = std::shared_ptr<CheckpointStore>(new CheckpointStore());
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    store->directory_ = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    store->shard_files_.push_back(path.filename().string());
  } else if (fs::is_directory(path, ec)) {
    store->directory_ = path;
    fs::path index_path = path / "model.safetensors.index.json";
    if (fs::exists(index_path)) {
      nlohmann::json index = read_json_file(index_path);
      auto weight_map = index.find("weight_map");
      if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
        fail(index_path.string(), ": missing 'weight_map' object");
      std::map<std::string, size_t> shard_number;
      for (const auto& [tensor, shard] : weight_map->items()) {
        if (!shard.is_string()) fail(index_path.string(), ": weight_map entry for '", tensor, "' is not a string");
        std::string shard_name = shard.get<std::string>();
        check_shard_name(shard_name, index_path);
        auto [it, inserted] = shard_number.emplace(shard_name, store->shard_files_.size());
        if (inserted) store->shard_files_.push_back(shard_name);
        store->shard_of_[tensor] = it->second;
      }
      for (const auto& shard : store->shard_files_)
        if (!fs::is_regular_file(path / shard, ec))
          fail(index_path.string(), ": shard '", shard, "' named in the index does not exist");
    } else if (fs::exists(path / "model.safetensors")) {
      store->shard_files_.push_back("model.safetensors");
    } else {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(path, ec))
        if (entry.path().extension() == ".safetensors") found.push_back(entry.path().filename().string());
      std::sort(found.begin(), found.end());
      if (found.empty())
        fail(path.string(), ": no model.safetensors, model.safetensors.index.json or *.safetensors file found");
      store->shard_files_ = found;
    }
  } else {
    fail(path.string(), ": no such file or directory", hub_cache_hint(path.string()));
  }

  if (store->shard_of_.empty()) {
    // No index: every shard is opened now to learn its tensor names.
    store->shards_.resize(store->shard_files_.size());
    for (size_t i = 0; i < store->shard_files_.size(); ++i) {
      for (const auto& tensor : store->shard(i)->tensors()) {
        auto [it, inserted] = store->shard_of_.emplace(tensor.name, i);
        if (!inserted)
          fail((store->directory_ / store->shard_files_[i]).string(), ": tensor '", tensor.name,
               "' also appears in ", store->shard_files_[it->second]);
      }
    }
  } else {
    store->shards_.resize(store->shard_files_.size());
  }
  for (const auto& [name, shard] : store->shard_of_) store->names_.push_back(name);
  return store;
}

std::shared_ptr<const SafetensorsFile> CheckpointStore::shard(size_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!shards_[index]) shards_[index] = SafetensorsFile::open(directory_ / shard_files_[index]);
  return shards_[index];
}

std::optional<StoredTensor> CheckpointStore::find(const std::string& name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) return std::nullopt;
  auto file = shard(it->second);
  const TensorInfo* info = file->find(name);
  if (!info)
    fail(file->path().string(), ": tensor '", name, "' is listed in model.safetensors.index.json but not in this shard");
  return StoredTensor{info, file};
}

StoredTensor CheckpointStore::tensor(const std::string& name) const {
  auto found = find(name);
  if (!found) fail(directory_.string(), ": missing tensor '", name, "'");
  return *found;
}

uint64_t CheckpointStore::bytes_on_disk() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& shard : shard_files_) total += fs::file_size(directory_ / shard, ec);
  return total;
}

std::map<std::string, std::string> CheckpointStore::metadata() const {
  if (shard_files_.empty()) return {};
  return shard(0)->metadata();
}

bool CheckpointStore::has_file(const std::string& relative_name) const {
  std::error_code ec;
  return fs::is_regular_file(directory_ / relative_name, ec);
}

nlohmann::json CheckpointStore::read_json(const std::string& relative_name) const {
  return read_json_file(directory_ / relative_name);
}

}  // namespace moeforge
