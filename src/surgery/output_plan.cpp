// Plan printing and execution for surgery outputs (see output_plan.h).
#include "surgery/output_plan.h"

#include <fstream>
#include <optional>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "common/error.h"
#include "common/strings.h"
#include "arch/remote_code.h"

namespace moeforge::surgery {
namespace fs = std::filesystem;

void OutputPlan::copy(const CheckpointStore& store, const std::string& name, const std::string& out_name) {
  StoredTensor t = store.tensor(name);
  OutputGroup g;
  g.kind = GroupKind::Copy;
  g.what = name;
  g.decls.push_back(TensorDecl{out_name.empty() ? name : out_name, t.info->dtype, t.info->shape});
  g.bytes_read = t.info->num_bytes();
  const CheckpointStore* source = &store;
  std::string target = g.decls[0].name;
  g.produce = [source, name, target](CheckpointWriter& writer) {
    write_streamed_copy(writer, target, {file_range(source->tensor(name))});
  };
  groups.push_back(std::move(g));
}

uint64_t OutputPlan::bytes_written() const {
  uint64_t total = 0;
  for (const auto& g : groups)
    for (const auto& d : g.decls) total += d.num_bytes();
  return total;
}

void release_pages(ByteView bytes) {
  if (!bytes.data || bytes.size == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = reinterpret_cast<uintptr_t>(bytes.data) & ~(page - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(bytes.data) + bytes.size;
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // a hint; failure is harmless
}

FileRange file_range(const StoredTensor& tensor, uint64_t begin, uint64_t size) {
  const uint64_t total = tensor.info->num_bytes();
  if (size == ~0ull) size = total - begin;
  if (begin + size > total) fail("internal error: byte range outside tensor '", tensor.info->name, "'");
  return FileRange{tensor.file->path(), tensor.file->data_section_offset() + tensor.info->data_begin + begin, size};
}

namespace {

// The kernel-side copy (copy_file_range); false when unavailable here, so the caller streams.
bool kernel_copy(CheckpointWriter& writer, const std::string& name, const std::vector<FileRange>& parts) {
  uint64_t at = 0;
  for (const FileRange& r : parts) {
    const int fd = ::open(r.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(r.file.string(), ": cannot open: ", std::strerror(errno));
    bool ok = false;
    try {
      ok = writer.copy_range_into(name, fd, r.offset, r.size, at);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    if (!ok) return false;
    at += r.size;
  }
  writer.mark_copied(name, at);
  return true;
}

}  // namespace

void write_streamed_copy(CheckpointWriter& writer, const std::string& name, const std::vector<FileRange>& parts) {
  if (kernel_copy(writer, name, parts)) return;
  size_t part = 0;
  uint64_t done = 0;  // within parts[part]
  int fd = -1;
  fs::path open_path;
  struct Closer {
    int& fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  writer.write_streamed(name, [&](uint8_t* buffer, size_t capacity) {
    size_t filled = 0;
    while (filled < capacity && part < parts.size()) {
      const FileRange& r = parts[part];
      if (fd < 0 || open_path != r.file) {
        if (fd >= 0) ::close(fd);
        fd = ::open(r.file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail(r.file.string(), ": cannot open: ", std::strerror(errno));
        open_path = r.file;
      }
      const size_t want = static_cast<size_t>(std::min<uint64_t>(capacity - filled, r.size - done));
      ssize_t n = want == 0 ? 0 : ::pread(fd, buffer + filled, want, static_cast<off_t>(r.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (n == 0 && want > 0)) fail(r.file.string(), ": read failed while copying '", name, "'");
      filled += static_cast<size_t>(n);
      done += static_cast<uint64_t>(n);
      if (done == r.size) ++part, done = 0;
    }
    return filled;
  });
}

std::vector<fs::path> side_files_of(const CheckpointStore& store) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store.directory(), ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name == "config.json" || ends_with(name, ".safetensors") || ends_with(name, ".safetensors.index.json") ||
        starts_with(name, ".") || name == "moeforge_grow.json")
      continue;
    // Licence and notice files travel with every output, whatever their extension (Llama's licence requires it).
    std::string upper;
    for (char ch : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const bool legal = starts_with(upper, "LICENSE") || starts_with(upper, "LICENCE") || starts_with(upper, "NOTICE") ||
                       starts_with(upper, "USE_POLICY") || starts_with(upper, "COPYING");
    if (legal || ends_with(name, ".json") || ends_with(name, ".txt") || ends_with(name, ".model") || ends_with(name, ".jinja") ||
        ends_with(name, ".md"))
      out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void print_plan(const OutputPlan& plan, std::ostream& out) {
  size_t copied = 0, transformed = 0, created = 0, tensors = 0;
  uint64_t read = 0, copy_bytes = 0, new_bytes = 0;
  for (const auto& g : plan.groups) {
    read += g.bytes_read;
    for (const auto& d : g.decls) {
      ++tensors;
      (g.kind == GroupKind::Copy ? copy_bytes : new_bytes) += d.num_bytes();
      (g.kind == GroupKind::Copy ? copied : g.kind == GroupKind::Transform ? transformed : created)++;
    }
  }
  out << "plan: " << tensors << " tensors written (" << human_bytes(copy_bytes + new_bytes) << "): " << copied
      << " copied byte for byte (" << human_bytes(copy_bytes) << "), " << transformed << " transformed, " << created
      << " created (" << human_bytes(new_bytes) << "); " << human_bytes(read) << " read\n";
  for (const auto& g : plan.groups) {
    if (g.kind == GroupKind::Copy) continue;
    uint64_t bytes = 0;
    std::vector<std::string> names;
    for (const auto& d : g.decls) {
      bytes += d.num_bytes();
      if (names.size() < 2) names.push_back(d.name + " " + shape_to_string(d.shape));
    }
    out << "  " << (g.kind == GroupKind::Transform ? "transform " : "create    ") << g.what << ": " << g.decls.size()
        << " tensor(s), " << human_bytes(bytes) << " (" << join(names, ", ") << (g.decls.size() > 2 ? ", ..." : "")
        << ")\n";
  }
  for (const auto& f : plan.side_files) out << "  copy file " << f.filename().string() << "\n";
  for (const auto& [name, contents] : plan.extra_files) out << "  write file " << name << "\n";
}

fs::path execute(const OutputPlan& plan, const fs::path& destination, const ExecuteOptions& options) {
  if (options.dry_run) {
    print_plan(plan, std::cout);
    std::cout << "dry run: nothing written to " << destination.string() << "\n";
    return {};
  }
  if (fs::exists(destination) && !options.overwrite)
    fail(destination.string(), ": already exists; choose another --out, or pass --overwrite to replace it");
  std::vector<TensorDecl> decls;
  for (const auto& g : plan.groups) decls.insert(decls.end(), g.decls.begin(), g.decls.end());
  WriterOptions writer_options;
  writer_options.max_shard_bytes = options.max_shard_bytes;
  writer_options.overwrite = options.overwrite;
  writer_options.metadata = {{"format", "pt"}};
  CheckpointWriter writer(destination, std::move(decls), writer_options);
  size_t done = 0;
  for (const auto& g : plan.groups) {
    g.produce(writer);
    ++done;
    if (!options.quiet && g.kind != GroupKind::Copy && plan.groups.size() > 50 && done % 50 == 0)
      std::cerr << "  " << done << "/" << plan.groups.size() << " groups written\n";
  }
  nlohmann::json config = plan.config;
  const auto remote_code_files = apply_remote_code(config, options.remote_code);
  if (!options.remote_code && !options.quiet) std::cerr << note_ignored_by_transformers(config);
  writer.add_file("config.json", config.dump(2) + "\n");
  std::optional<std::string> base_card;
  for (const auto& f : plan.side_files) {
    const std::string name = f.filename().string();
    if (is_remote_code_file(name)) continue;
    if (!plan.card.operation.empty() && (name == "README.md" || name == "BASE_MODEL_CARD.md")) {
      // The output's README is its own card; the base's is kept under another name (once).
      if (!base_card) {
        writer.copy_file("BASE_MODEL_CARD.md", f);
        std::ifstream in(f, std::ios::binary);
        base_card = std::string(std::istreambuf_iterator<char>(in), {});
      }
      continue;
    }
    writer.copy_file(name, f);
  }
  if (!plan.card.operation.empty()) {
    OutputCard card = plan.card;
    if (!options.base_model_id.empty()) card.base_id = options.base_model_id;
    writer.add_file("README.md", output_card_markdown(card, config, base_card ? &*base_card : nullptr));
  }
  for (const auto& [name, contents] : plan.extra_files) writer.add_file(name, contents);
  for (const auto& [name, contents] : remote_code_files) writer.add_file(name, contents);
  return writer.commit();
}

}  // namespace moeforge::surgery
