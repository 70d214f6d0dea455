// Plan printing and execution for surgery outputs (see output_plan.h).
#include "surgery/output_plan.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>

#include "common/error.h"
#include "common/strings.h"

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
    write_streamed_copy(writer, target, source->tensor(name).bytes());
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

void write_streamed_copy(CheckpointWriter& writer, const std::string& name, ByteView bytes) {
  size_t done = 0;
  writer.write_streamed(name, [&](uint8_t* buffer, size_t capacity) {
    size_t n = std::min(capacity, bytes.size - done);
    if (n == 0) return size_t{0};
    std::memcpy(buffer, bytes.data + done, n);
    release_pages(ByteView{bytes.data + done, n});
    done += n;
    return n;
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
    if (ends_with(name, ".json") || ends_with(name, ".txt") || ends_with(name, ".model") || ends_with(name, ".jinja") ||
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
    fail(destination.string(), ": already exists; choose another --out or remove it");
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
  writer.add_file("config.json", plan.config.dump(2) + "\n");
  for (const auto& f : plan.side_files) writer.copy_file(f.filename().string(), f);
  for (const auto& [name, contents] : plan.extra_files) writer.add_file(name, contents);
  return writer.commit();
}

}  // namespace moeforge::surgery
