#include "io/checkpoint_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/remove_tree.h"
#include "common/strings.h"
#include "io/stale_temps.h"

namespace moeforge {
namespace fs = std::filesystem;

uint64_t TensorDecl::num_bytes() const {
  uint64_t count = 1;
  for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
  return count * dtype_size(dtype);
}

struct CheckpointWriter::Shard {
  fs::path path;
  int fd = -1;
  uint64_t data_offset = 0;  // where the data section starts in the file
  uint64_t data_bytes = 0;
  std::vector<const TensorDecl*> tensors;
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
};

struct CheckpointWriter::Slot {
  TensorDecl decl;
  size_t shard = 0;
  uint64_t file_offset = 0;  // absolute offset of the tensor's first byte in the shard file
  bool written = false;
};

namespace {

std::string header_json(const std::vector<std::pair<const TensorDecl*, uint64_t>>& placed,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const auto& [decl, offset] : placed)
    header[decl->name] = {{"dtype", std::string(dtype_name(decl->dtype))},
                          {"shape", decl->shape},
                          {"data_offsets", {offset, offset + decl->num_bytes()}}};
  std::string text = header.dump();
  while (text.size() % 8) text.push_back(' ');  // keep the data section 8-byte aligned
  return text;
}

std::string length_prefix(uint64_t length) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return bytes;
}

void write_all(int fd, const uint8_t* data, size_t size, uint64_t offset, const fs::path& path,
               const std::string& what) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, std::min<size_t>(size, 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path.string(), ": cannot write ", what, ": ", std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

std::string shard_file_name(const std::string& prefix, size_t index, size_t count) {
  if (count == 1) return prefix + ".safetensors";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "-%05zu-of-%05zu.safetensors", index + 1, count);
  return prefix + buffer;
}

}  // namespace

CheckpointWriter::CheckpointWriter(fs::path destination, std::vector<TensorDecl> tensors, WriterOptions options)
    : destination_(std::move(destination)), options_(std::move(options)) {
  if (destination_.empty()) fail("output directory name is empty");
  while (destination_.filename().empty() && destination_.has_parent_path()) destination_ = destination_.parent_path();
  std::error_code ec;
  if (fs::exists(destination_, ec) && !options_.overwrite)
    fail(destination_.string(), ": output already exists; choose another --out, or pass --overwrite to replace it");
  if (options_.max_shard_bytes == 0) fail("max shard size must be positive");

  std::set<std::string> names;
  for (auto& decl : tensors) {
    if (decl.name.empty()) fail(destination_.string(), ": a tensor has an empty name");
    if (!names.insert(decl.name).second) fail(destination_.string(), ": tensor '", decl.name, "' declared twice");
    for (int64_t dim : decl.shape)
      if (dim < 0) fail(destination_.string(), ": tensor '", decl.name, "' has a negative dimension");
    auto slot = std::make_unique<Slot>();
    slot->decl = std::move(decl);
    declared_order_.push_back(slot->decl.name);
    slots_[slot->decl.name] = std::move(slot);
  }

  // Greedy sharding in declaration order; a tensor larger than the cap gets a shard of its own.
  std::vector<std::vector<Slot*>> groups(1);
  uint64_t group_bytes = 0;
  for (const auto& name : declared_order_) {
    Slot* slot = slots_[name].get();
    uint64_t bytes = slot->decl.num_bytes();
    if (!groups.back().empty() && group_bytes + bytes > options_.max_shard_bytes) {
      groups.emplace_back();
      group_bytes = 0;
    }
    groups.back().push_back(slot);
    group_bytes += bytes;
  }

  temp_owner_ = std::make_unique<OwnedTempDir>(destination_);
  temp_dir_ = temp_owner_->path();
  try {  // a constructor that throws runs no destructor: clean the temporary directory here
  for (size_t s = 0; s < groups.size(); ++s) {
    auto shard = std::make_unique<Shard>();
    std::string file_name = shard_file_name(options_.file_prefix, s, groups.size());
    shard->path = temp_dir_ / file_name;
    std::vector<std::pair<const TensorDecl*, uint64_t>> placed;
    uint64_t offset = 0;
    for (Slot* slot : groups[s]) {
      placed.emplace_back(&slot->decl, offset);
      slot->shard = s;
      offset += slot->decl.num_bytes();
    }
    shard->data_bytes = offset;
    std::string header = header_json(placed, options_.metadata);
    shard->data_offset = 8 + header.size();
    for (size_t i = 0; i < groups[s].size(); ++i) groups[s][i]->file_offset = shard->data_offset + placed[i].second;

    shard->fd = ::open(shard->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (shard->fd < 0) fail(shard->path.string(), ": cannot create: ", std::strerror(errno));
    uint64_t total = shard->data_offset + shard->data_bytes;
    // Reserve the space now so a full disk is reported before any long work starts.
    int rc = ::posix_fallocate(shard->fd, 0, static_cast<off_t>(total));
    if (rc == ENOSPC)
      fail(destination_.string(), ": not enough disk space for ", human_bytes(total), " (shard ", file_name, ")");
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL)
      fail(shard->path.string(), ": cannot reserve space: ", std::strerror(rc));
    std::string prefix = length_prefix(header.size()) + header;
    write_all(shard->fd, reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size(), 0, shard->path, "header");
    shard_names_.push_back(file_name);
    shards_.push_back(std::move(shard));
  }
  } catch (...) {
    shards_.clear();
    remove_tree(temp_dir_);
    throw;
  }
}

CheckpointWriter::~CheckpointWriter() {
  shards_.clear();  // close descriptors first
  if (!committed_ && !temp_dir_.empty()) remove_tree(temp_dir_);
}

CheckpointWriter::Slot& CheckpointWriter::slot(const std::string& name) {
  auto it = slots_.find(name);
  if (it == slots_.end()) fail(destination_.string(), ": tensor '", name, "' was not declared");
  if (it->second->written) fail(destination_.string(), ": tensor '", name, "' written twice");
  if (committed_) fail(destination_.string(), ": writer already committed");
  return *it->second;
}

void CheckpointWriter::write(const std::string& name, ByteView bytes) {
  Slot& target = slot(name);
  if (bytes.size != target.decl.num_bytes())
    fail(destination_.string(), ": tensor '", name, "' has ", bytes.size, " bytes; declared ",
         shape_to_string(target.decl.shape), " ", dtype_name(target.decl.dtype), " needs ", target.decl.num_bytes());
  Shard& shard = *shards_[target.shard];
  write_all(shard.fd, bytes.data, bytes.size, target.file_offset, shard.path, cat("tensor '", name, "'"));
  target.written = true;
}

void CheckpointWriter::write_streamed(const std::string& name,
                                      const std::function<size_t(uint8_t*, size_t)>& fill) {
  Slot& target = slot(name);
  Shard& shard = *shards_[target.shard];
  const uint64_t expected = target.decl.num_bytes();
  std::vector<uint8_t> buffer(std::min<uint64_t>(std::max<uint64_t>(expected, 1), 16u << 20));
  uint64_t done = 0;
  while (true) {
    size_t n = fill(buffer.data(), buffer.size());
    if (n == 0) break;
    if (done + n > expected)
      fail(destination_.string(), ": tensor '", name, "' received more than its declared ", expected, " bytes");
    write_all(shard.fd, buffer.data(), n, target.file_offset + done, shard.path, cat("tensor '", name, "'"));
    done += n;
  }
  if (done != expected)
    fail(destination_.string(), ": tensor '", name, "' received ", done, " of its declared ", expected, " bytes");
  target.written = true;
}

bool CheckpointWriter::copy_range_into(const std::string& name, int fd, uint64_t offset, uint64_t size, uint64_t at) {
  Slot& target = slot(name);
  if (at + size > target.decl.num_bytes())
    fail(destination_.string(), ": tensor '", name, "' received more than its declared ", target.decl.num_bytes(), " bytes");
  Shard& shard = *shards_[target.shard];
  loff_t in = static_cast<loff_t>(offset), out = static_cast<loff_t>(target.file_offset + at);
  uint64_t left = size;
  while (left > 0) {
    const ssize_t n = ::copy_file_range(fd, &in, shard.fd, &out, static_cast<size_t>(std::min<uint64_t>(left, 1ull << 30)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL || errno == EBADF))
      return false;
    if (n < 0) fail(shard.path.string(), ": writing tensor '", name, "' failed: ", std::strerror(errno));
    if (n == 0) fail("source of tensor '", name, "' ended early (truncated file?)");
    left -= static_cast<uint64_t>(n);
  }
  return true;
}

void CheckpointWriter::mark_copied(const std::string& name, uint64_t bytes) {
  Slot& target = slot(name);
  if (bytes != target.decl.num_bytes())
    fail(destination_.string(), ": tensor '", name, "' received ", bytes, " of its declared ", target.decl.num_bytes(), " bytes");
  target.written = true;
}

void CheckpointWriter::add_file(const std::string& relative_name, const std::string& contents) {
  fs::path path = temp_dir_ / relative_name;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.flush();
  if (!out) fail(path.string(), ": cannot write (disk full?)");
}

void CheckpointWriter::copy_file(const std::string& relative_name, const fs::path& source) {
  fs::path path = temp_dir_ / relative_name;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (!fs::copy_file(source, path, fs::copy_options::overwrite_existing, ec))
    fail(source.string(), ": cannot copy into output: ", ec.message());
}

fs::path CheckpointWriter::commit() {
  if (committed_) fail(destination_.string(), ": writer already committed");
  for (const auto& name : declared_order_)
    if (!slots_[name]->written) fail(destination_.string(), ": tensor '", name, "' was declared but never written");
  for (auto& shard : shards_) {
    if (::fsync(shard->fd) != 0) fail(shard->path.string(), ": fsync failed: ", std::strerror(errno));
    ::close(shard->fd);
    shard->fd = -1;
  }
  if (shards_.size() > 1) {
    nlohmann::json index;
    uint64_t total = 0;
    nlohmann::json weight_map = nlohmann::json::object();
    for (const auto& name : declared_order_) {
      total += slots_[name]->decl.num_bytes();
      weight_map[name] = shard_names_[slots_[name]->shard];
    }
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    add_file(options_.file_prefix + ".safetensors.index.json", index.dump(2) + "\n");
  }
  std::error_code ec;
  fs::path backup;
  if (fs::exists(destination_, ec)) {
    if (!options_.overwrite) fail(destination_.string(), ": output appeared while writing; left result in ", temp_dir_.string());
    backup = temp_dir_.string() + ".old";
    fs::rename(destination_, backup, ec);
    if (ec) fail(destination_.string(), ": cannot move the old output aside: ", ec.message());
  }
  fs::rename(temp_dir_, destination_, ec);
  if (ec) fail(destination_.string(), ": cannot move the finished output into place: ", ec.message());
  committed_ = true;
  temp_owner_->release();
  if (!backup.empty()) remove_tree(backup);
  return destination_;
}

std::string serialize_safetensors(const std::vector<std::pair<TensorDecl, std::string>>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<const TensorDecl*, uint64_t>> placed;
  uint64_t offset = 0;
  for (const auto& [decl, bytes] : tensors) {
    if (bytes.size() != decl.num_bytes())
      fail("tensor '", decl.name, "' has ", bytes.size(), " bytes but its shape needs ", decl.num_bytes());
    placed.emplace_back(&decl, offset);
    offset += bytes.size();
  }
  std::string header = header_json(placed, metadata);
  std::string out = length_prefix(header.size()) + header;
  for (const auto& [decl, bytes] : tensors) out += bytes;
  return out;
}

}  // namespace moeforge
