// One expert's weights in canonical form, read from and written to any family layout:
//   gate [F, H], up [F, H], down [H, F] (row-major float32; y = down @ act(gate @ x, up @ x)),
// plus optional biases. Reading converts F32/F16/BF16 and dequantises MXFP4; writing
// re-interleaves (GPT-OSS), fuses, or quantises, and can copy an untouched expert's bytes verbatim
// (so MXFP4 experts that surgery does not change stay bit-identical).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/model_spec.h"
#include "io/checkpoint_writer.h"

namespace moeforge {

class CheckpointStore;

struct ExpertWeights {
  int64_t hidden_size = 0;        // H
  int64_t intermediate_size = 0;  // F
  std::vector<float> gate;        // [F, H]; empty for an ungated MLP (GPT-Neo)
  std::vector<float> up;          // [F, H]
  std::vector<float> down;        // [H, F]
  std::vector<float> gate_bias;   // [F] or empty
  std::vector<float> up_bias;     // [F] or empty
  std::vector<float> down_bias;   // [H] or empty
};

// Routed expert `expert` of MoE layer `layer`, from whatever layout spec.moe.layout says.
ExpertWeights read_expert(const ModelSpec& spec, const CheckpointStore& store, int64_t layer, int64_t expert);
// The shared expert of a MoE layer (width moe.shared_intermediate_size).
ExpertWeights read_shared_expert(const ModelSpec& spec, const CheckpointStore& store, int64_t layer);
// The dense MLP of a non-MoE layer (GPT-Neo: up = c_fc, down = c_proj, with biases; no gate).
ExpertWeights read_dense_mlp(const ModelSpec& spec, const CheckpointStore& store, int64_t layer);

// Where one output expert comes from when encoding a layer.
struct ExpertSource {
  const ExpertWeights* weights = nullptr;  // canonical weights, or
  const ModelSpec* spec = nullptr;         // expert `expert` of layer `layer` in `store`, copied
  const CheckpointStore* store = nullptr;  // byte for byte when its layout, dims and dtypes match
  int64_t layer = -1;                      // the output's (else decoded and re-encoded)
  int64_t expert = -1;

  static ExpertSource from(const ExpertWeights& w) { return ExpertSource{&w}; }
  static ExpertSource copy_of(const ModelSpec& spec, const CheckpointStore& store, int64_t layer, int64_t expert) {
    return ExpertSource{nullptr, &spec, &store, layer, expert};
  }
};

// One on-disk tensor ready for CheckpointWriter (declare `decl`, then write `bytes`).
struct EncodedTensor {
  TensorDecl decl;
  std::vector<uint8_t> bytes;
};

// Encodes the routed experts of MoE layer `layer` (experts.size() == spec.moe.num_experts) into
// the tensors of spec's family and layout, named by its table. Float tensors use `float_dtype`
// (F32/F16/BF16); MXFP4 blocks/scales are U8 and MXFP4 biases BF16 (GPT-OSS's choice). Biases
// missing from canonical weights are written as zeros where the layout needs them.
std::vector<EncodedTensor> encode_layer_experts(const ModelSpec& spec, int64_t layer,
                                                const std::vector<ExpertSource>& experts, DType float_dtype);

}  // namespace moeforge
