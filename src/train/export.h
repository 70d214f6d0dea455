// Run outputs in Hugging Face form: trainable.safetensors (only the changed tensors, the family's
// names and layout; per-expert layouts carry only the trained experts) and merge-deltas, which
// streams a base checkpoint into a full one with the trained tensors substituted. PEFT adapters:
// train/peft_adapter.h.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "io/checkpoint_writer.h"
#include "model/model_weights.h"
#include "train/selectors.h"
#include "train/trainable.h"

namespace moeforge::train {

// One on-disk tensor a canonical tensor (or a row range of it) becomes.
struct HfPiece {
  std::string name;        // "model.layers.0.mlp.gate_proj.weight"
  int64_t row_begin = 0;   // rows [row_begin, row_begin + rows) of the canonical tensor
  int64_t rows = -1;       // -1 = all rows
};
// Pieces of a non-expert canonical tensor ("layers.0.mlp.w_in" -> gate_proj rows [0, F), up_proj
// rows [F, 2F)). Throws for tensors the family cannot name (and for layers.L.experts.*).
std::vector<HfPiece> hf_pieces(const ModelSpec& spec, const std::string& canonical, int64_t rows);

// Every tensor in `changed`, read from `weights`, as float32 safetensors blobs in the family's Hugging
// Face names and layout, sorted by name (what write_trainable writes; train/step_dump.h reuses it).
// A layer of packed MXFP4 experts (model/moe_experts.h) is written as MXFP4 like its checkpoint
// `model_store`: untouched experts' bytes copied from it, the trained (unpacked) ones quantised,
// biases bf16; without a store such a layer is refused.
std::vector<std::pair<TensorDecl, std::string>> encode_trainable(const ModelSpec& spec, model::ModelWeights& weights,
                                                                const Selection& changed,
                                                                const CheckpointStore* model_store = nullptr);
// Writes `path`: every tensor in `changed`, read from `weights`. Returns the HF names written.
std::vector<std::string> write_trainable(const ModelSpec& spec, model::ModelWeights& weights, const Selection& changed,
                                         const std::filesystem::path& path, const CheckpointStore* model_store = nullptr);

struct MergeOptions {
  std::filesystem::path base, run, out;
  bool overwrite = false;
  bool remote_code = true;           // auto_map + modeling_moeforge.py where needed (surgery/remote_code.h)
  bool drop_selection_bias = false;  // remove moeforge_selection_bias; prints the measured logit change
};
// Streams every base tensor to `out` (byte-for-byte unless trainable.safetensors replaces it, then
// converted to the base tensor's dtype), plus the base's side files; config.json and the remote
// code are written again for the output. Returns the tensors replaced.
size_t merge_deltas(const MergeOptions& options);

}  // namespace moeforge::train
