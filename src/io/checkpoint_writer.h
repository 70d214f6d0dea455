// Streaming checkpoint writer. The caller declares every tensor (name, dtype, shape) up front;
// the writer lays them out into size-capped shards, creates the shard files (space reserved, so a
// full disk fails before any long work), and then accepts tensor data in any order, one tensor at
// a time, written straight to its final offset. commit() checks completeness, writes the index and
// extra files, and renames the temporary directory into place. Until then nothing appears at the
// destination; a writer destroyed without commit() removes its temporary directory, and one killed
// before either leaves a directory that the next writer to the same destination removes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors_file.h"

namespace moeforge {

class OwnedTempDir;

struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t num_bytes() const;
};

struct WriterOptions {
  uint64_t max_shard_bytes = 5ull * 1000 * 1000 * 1000;  // HF's default "5GB"
  std::map<std::string, std::string> metadata = {{"format", "pt"}};  // __metadata__ of every shard
  std::string file_prefix = "model";  // model.safetensors / model-00001-of-00002.safetensors
  bool overwrite = false;             // replace an existing destination directory
};

class CheckpointWriter {
 public:
  CheckpointWriter(std::filesystem::path destination, std::vector<TensorDecl> tensors,
                   WriterOptions options = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes the whole tensor. `bytes.size` must equal the declared size.
  void write(const std::string& name, ByteView bytes);
  // Writes the tensor in pieces: `fill(buffer, capacity)` is called repeatedly and returns how many
  // bytes it put in buffer (0 ends); the total must equal the declared size. Keeps memory bounded.
  void write_streamed(const std::string& name,
                      const std::function<size_t(uint8_t* buffer, size_t capacity)>& fill);
  // Copies `size` bytes at `offset` of the open file `fd` into tensor `name` at byte `at`, inside the
  // kernel (copy_file_range: no user-space copy; file systems that share extents may reflink).
  // Returns false, having written nothing useful, when the kernel or file system cannot: stream then.
  bool copy_range_into(const std::string& name, int fd, uint64_t offset, uint64_t size, uint64_t at);
  // After copy_range_into filled a tensor: checks `bytes` is its declared size and marks it written.
  void mark_copied(const std::string& name, uint64_t bytes);
  // A non-tensor file written beside the shards (config.json, tokenizer.json, ...).
  void add_file(const std::string& relative_name, const std::string& contents);
  // Copies a file as-is (tokenizer files etc.).
  void copy_file(const std::string& relative_name, const std::filesystem::path& source);

  // Finishes: every declared tensor must have been written. Returns the final directory.
  std::filesystem::path commit();

  const std::filesystem::path& temporary_directory() const { return temp_dir_; }
  const std::vector<std::string>& shard_files() const { return shard_names_; }

 private:
  struct Slot;
  struct Shard;
  Slot& slot(const std::string& name);

  std::filesystem::path destination_;
  std::filesystem::path temp_dir_;
  std::unique_ptr<OwnedTempDir> temp_owner_;  // locked while this writer lives (stale_temps.h)
  WriterOptions options_;
  std::vector<std::string> shard_names_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::map<std::string, std::unique_ptr<Slot>> slots_;
  std::vector<std::string> declared_order_;
  bool committed_ = false;
};

// Writes a single-file safetensors blob in memory (tests and small outputs).
std::string serialize_safetensors(const std::vector<std::pair<TensorDecl, std::string>>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

}  // namespace moeforge
