#include "gguf/gguf_export.h"

#include <unistd.h>

#include <cstdio>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/strings.h"
#include "gguf/gguf_model.h"
#include "gguf/gguf_vocab.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

void check_output(const GgufExportOptions& o) {
  namespace fs = std::filesystem;
  if (o.out.empty()) fail("--out: a .gguf file path is required");
  if (fs::is_directory(o.out)) fail(o.out.string(), ": is a directory; --out names the .gguf file to write");
  if (fs::exists(o.out) && !o.overwrite) fail(o.out.string(), ": already exists; pass --overwrite to replace it");
  const fs::path parent = o.out.has_parent_path() ? o.out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent)) fail(o.out.string(), ": its directory ", parent.string(), " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) fail(o.out.string(), ": its directory ", parent.string(), " is not writable");
}

}  // namespace

GgufExportResult export_gguf(const GgufExportOptions& o) {
  // Every check that can fail on the user's input runs before a weight is read.
  const GgufFileType type = parse_gguf_file_type(o.type);
  check_output(o);
  auto store = CheckpointStore::open(o.model);
  const ModelSpec spec = load_model_spec(*store);
  const nlohmann::json config = store->read_json("config.json");
  GgufModelPlan plan = plan_gguf_model(spec, config, store, type);
  add_gguf_vocab(store->directory(), plan.vocab, plan.metadata);
  for (const std::string& note : plan.notes) std::fprintf(stderr, "moeforge: note: %s\n", note.c_str());

  std::vector<GgufTensorDecl> decls;
  uint64_t total = 0;
  for (const auto& t : plan.tensors) {
    decls.push_back(t.decl);
    total += t.decl.bytes();
  }
  if (o.verbose)
    for (const auto& d : decls) {
      std::vector<int64_t> dims(d.dims.begin(), d.dims.end());
      std::fprintf(stderr, "  %-36s %-5s %s\n", d.name.c_str(), ggml_type_name(d.type), shape_to_string(dims).c_str());
    }
  GgufFileWriter writer(o.out, plan.metadata, std::move(decls));
  Progress progress("export-gguf", static_cast<int64_t>(total), "bytes");
  uint64_t done = 0;
  for (const auto& t : plan.tensors) {
    t.write(writer);
    done += t.decl.bytes();
    progress.update(static_cast<int64_t>(done));
  }
  progress.finish();
  writer.finish();
  GgufExportResult result{plan.arch, plan.tensors.size(), writer.bytes_written()};
  std::printf("wrote %s: %s, %llu tensors, %s (%s)\n", o.out.string().c_str(), result.arch.c_str(),
              static_cast<unsigned long long>(result.tensors), human_bytes(result.bytes).c_str(), o.type.c_str());
  return result;
}

}  // namespace moeforge
