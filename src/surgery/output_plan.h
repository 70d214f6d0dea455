// The shape every surgery command shares: a list of output tensor groups, each either copied byte
// for byte from an input store or produced by a function, executed one group at a time into a
// CheckpointWriter (temp dir + rename), so memory stays bounded by the largest changed group.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "surgery/output_card.h"

namespace moeforge::surgery {

enum class GroupKind : uint8_t {
  Copy,       // one tensor copied byte for byte (MXFP4 stays MXFP4)
  Transform,  // tensors computed from input tensors (experts, averaged weights, widened router)
  Create,     // new tensors initialised from nothing or from statistics (router, shared expert)
};

struct OutputGroup {
  GroupKind kind = GroupKind::Copy;
  std::string what;                  // "layer 3 experts", for messages and the plan
  std::vector<TensorDecl> decls;     // the output tensors this group writes (each exactly once)
  uint64_t bytes_read = 0;           // input bytes it reads (for the plan)
  // Writes every tensor of `decls` into the writer. Copy groups fill it in automatically.
  std::function<void(CheckpointWriter&)> produce;
};

struct OutputPlan {
  std::vector<OutputGroup> groups;
  nlohmann::json config;                         // the output config.json
  std::vector<std::filesystem::path> side_files;  // copied as-is (tokenizer, generation config, ...)
  std::map<std::string, std::string> extra_files; // written as-is (moeforge_grow.json, ...)
  OutputCard card;                                // README.md of the output (the base's becomes BASE_MODEL_CARD.md)

  // A byte-for-byte copy of `name` from `store`, optionally renamed.
  void copy(const CheckpointStore& store, const std::string& name, const std::string& out_name = "");
  void add(OutputGroup group) { groups.push_back(std::move(group)); }
  uint64_t bytes_written() const;
};

struct ExecuteOptions {
  uint64_t max_shard_bytes = 5ull * 1000 * 1000 * 1000;
  bool overwrite = false;
  bool dry_run = false;  // print the plan, write nothing
  bool quiet = false;
  // Where transformers' family cannot express the output (a moeforge shared expert or selection
  // bias), write auto_map + modeling_moeforge.py (surgery/remote_code.h); false: the plain family,
  // and a note of what transformers will ignore.
  bool remote_code = true;
  // The base's Hub repo id for the model card ("org/name"), when its path does not say (a base
  // outside the Hugging Face cache); empty: from the path, or none.
  std::string base_model_id;
};

// Side files of a model directory worth carrying over: everything but config.json, *.safetensors
// and the safetensors index (generation_config.json, tokenizer*.json, special_tokens_map.json, ...).
std::vector<std::filesystem::path> side_files_of(const CheckpointStore& store);

// Prints "tensors read / written / created / bytes" and one line per non-copy group.
void print_plan(const OutputPlan& plan, std::ostream& out);

// Writes the plan to `destination` (nothing appears there unless every group succeeded) and returns
// the final directory; with dry_run prints the plan and returns an empty path.
std::filesystem::path execute(const OutputPlan& plan, const std::filesystem::path& destination,
                              const ExecuteOptions& options);

// A byte range of a file on disk (part of a stored tensor).
struct FileRange {
  std::filesystem::path file;
  uint64_t offset = 0, size = 0;
};
// The bytes [begin, begin + size) of a stored tensor (size -1 = to its end) as a file range.
FileRange file_range(const StoredTensor& tensor, uint64_t begin = 0, uint64_t size = ~0ull);
// Streams the ranges, in order, into tensor `name` with pread (16 MiB at a time): no page faults
// through the mapping and no growth of the resident set, whatever the model size.
void write_streamed_copy(CheckpointWriter& writer, const std::string& name, const std::vector<FileRange>& parts);
// Drops mapped pages of a view from this process (they stay in the page cache).
void release_pages(ByteView bytes);

}  // namespace moeforge::surgery
