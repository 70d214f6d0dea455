// Reading one expert from any layout into canonical float matrices, and encoding a layer's
// experts back into a family's on-disk tensors.
#include "arch/expert_io.h"

#include <cstring>
#include <optional>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "arch/mxfp4.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

using Role = TensorRole;

// The tensor for (role, layer, expert) with its shape checked against the spec.
StoredTensor fetch(const ModelSpec& spec, const CheckpointStore& store, Role role, int64_t layer, int64_t expert = -1) {
  std::string name = tensor_name(spec, role, layer, expert);
  StoredTensor t = store.tensor(name);
  std::vector<int64_t> want = role_shape(spec, role);
  if (t.info->shape != want)
    fail("tensor '", name, "' has wrong shape; expected ", shape_to_string(want), ", got ",
         shape_to_string(t.info->shape));
  return t;
}

// Elements of expert `e` in a tensor whose first dimension is the expert index.
std::vector<float> expert_slice(const StoredTensor& t, int64_t e) {
  const uint64_t per = t.info->num_elements() / static_cast<uint64_t>(t.info->shape[0]);
  return read_float_range(t, static_cast<uint64_t>(e) * per, per);
}

ByteView expert_bytes(const StoredTensor& t, int64_t e) {
  ByteView all = t.bytes();
  const size_t per = all.size / static_cast<size_t>(t.info->shape[0]);
  return ByteView{all.data + static_cast<size_t>(e) * per, per};
}

void check_moe_layer(const ModelSpec& spec, int64_t layer, int64_t expert) {
  if (layer < 0 || layer >= spec.num_layers || !spec.is_moe[layer])
    fail("layer ", layer, " of ", spec.model_type, " model ", spec.source, " is not a MoE layer");
  if (expert < 0 || expert >= spec.moe.num_experts)
    fail("expert ", expert, " out of range; layer ", layer, " has ", spec.moe.num_experts, " experts");
}

void split_interleaved_bias(const std::vector<float>& b, ExpertWeights& w) {
  const int64_t F = w.intermediate_size;
  w.gate_bias.resize(F);
  w.up_bias.resize(F);
  for (int64_t f = 0; f < F; ++f) {
    w.gate_bias[f] = b[2 * f];
    w.up_bias[f] = b[2 * f + 1];
  }
}

}  // namespace

ExpertWeights read_expert(const ModelSpec& spec, const CheckpointStore& store, int64_t layer, int64_t e) {
  check_moe_layer(spec, layer, e);
  ExpertWeights w;
  const int64_t H = spec.hidden_size, F = spec.moe.moe_intermediate_size;
  w.hidden_size = H;
  w.intermediate_size = F;
  if (spec.moe.layout == ExpertLayout::PerExpert) {  // each role its own tensor; ungated: no gate
    auto read_if = [&](Role role, std::vector<float>& out) {
      if (spec_has_role(spec, role, layer)) out = read_floats(fetch(spec, store, role, layer, e));
    };
    read_if(Role::ExpertGate, w.gate);
    read_if(Role::ExpertUp, w.up);
    read_if(Role::ExpertDown, w.down);
    read_if(Role::ExpertUpBias, w.up_bias);
    read_if(Role::ExpertDownBias, w.down_bias);
    return w;
  }
  w.gate.resize(F * H);
  w.up.resize(F * H);
  w.down.resize(H * F);
  switch (spec.moe.layout) {
    case ExpertLayout::PerExpert: break;  // read above
    case ExpertLayout::FusedConcat: {  // gate_up [E, 2F, H]: gate rows first, then up rows
      std::vector<float> gu = expert_slice(fetch(spec, store, Role::ExpertsGateUp, layer), e);
      std::copy(gu.begin(), gu.begin() + F * H, w.gate.begin());
      std::copy(gu.begin() + F * H, gu.end(), w.up.begin());
      w.down = expert_slice(fetch(spec, store, Role::ExpertsDown, layer), e);  // [H, F]
      break;
    }
    case ExpertLayout::FusedInterleaved: {  // gate_up [E, H, 2F] interleaved; down [E, F, H]
      std::vector<float> gu = expert_slice(fetch(spec, store, Role::ExpertsGateUp, layer), e);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t f = 0; f < F; ++f) {
          w.gate[f * H + h] = gu[h * 2 * F + 2 * f];
          w.up[f * H + h] = gu[h * 2 * F + 2 * f + 1];
        }
      std::vector<float> d = expert_slice(fetch(spec, store, Role::ExpertsDown, layer), e);
      for (int64_t f = 0; f < F; ++f)
        for (int64_t h = 0; h < H; ++h) w.down[h * F + f] = d[f * H + h];
      break;
    }
    case ExpertLayout::Mxfp4: {  // rows are output channels: gate_up rows 2f / 2f+1, down rows h
      ByteView blocks = expert_bytes(fetch(spec, store, Role::ExpertsGateUpBlocks, layer), e);
      ByteView scales = expert_bytes(fetch(spec, store, Role::ExpertsGateUpScales, layer), e);
      std::vector<float> rows(2 * F * H);
      mxfp4_dequantize_rows(blocks.data, scales.data, 2 * F, H / kMxfp4BlockSize, rows.data());
      for (int64_t f = 0; f < F; ++f) {
        std::copy(rows.begin() + (2 * f) * H, rows.begin() + (2 * f + 1) * H, w.gate.begin() + f * H);
        std::copy(rows.begin() + (2 * f + 1) * H, rows.begin() + (2 * f + 2) * H, w.up.begin() + f * H);
      }
      blocks = expert_bytes(fetch(spec, store, Role::ExpertsDownBlocks, layer), e);
      scales = expert_bytes(fetch(spec, store, Role::ExpertsDownScales, layer), e);
      mxfp4_dequantize_rows(blocks.data, scales.data, H, F / kMxfp4BlockSize, w.down.data());
      break;
    }
  }
  if (spec.moe.expert_bias && spec.moe.layout != ExpertLayout::PerExpert) {
    split_interleaved_bias(expert_slice(fetch(spec, store, Role::ExpertsGateUpBias, layer), e), w);
    w.down_bias = expert_slice(fetch(spec, store, Role::ExpertsDownBias, layer), e);
  }
  return w;
}

ExpertWeights read_shared_expert(const ModelSpec& spec, const CheckpointStore& store, int64_t layer) {
  if (layer < 0 || layer >= spec.num_layers || !spec.is_moe[layer] || spec.moe.num_shared_experts == 0)
    fail("layer ", layer, " of ", spec.model_type, " model ", spec.source, " has no shared expert");
  ExpertWeights w;
  w.hidden_size = spec.hidden_size;
  w.intermediate_size = spec.moe.shared_intermediate_size;
  if (spec_has_role(spec, Role::SharedGate, layer)) w.gate = read_floats(fetch(spec, store, Role::SharedGate, layer));
  w.up = read_floats(fetch(spec, store, Role::SharedUp, layer));
  w.down = read_floats(fetch(spec, store, Role::SharedDown, layer));
  return w;
}

ExpertWeights read_dense_mlp(const ModelSpec& spec, const CheckpointStore& store, int64_t layer) {
  if (layer < 0 || layer >= spec.num_layers || spec.is_moe[layer])
    fail("layer ", layer, " of ", spec.model_type, " model ", spec.source, " has no dense MLP");
  ExpertWeights w;
  w.hidden_size = spec.hidden_size;
  w.intermediate_size = spec.intermediate_size;
  auto read_if = [&](Role role, std::vector<float>& out) {
    if (spec_has_role(spec, role, layer)) out = read_floats(fetch(spec, store, role, layer));
  };
  read_if(Role::MlpGate, w.gate);
  read_if(Role::MlpUp, w.up);
  read_if(Role::MlpDown, w.down);
  read_if(Role::MlpGateBias, w.gate_bias);
  read_if(Role::MlpUpBias, w.up_bias);
  read_if(Role::MlpDownBias, w.down_bias);
  return w;
}

}  // namespace moeforge
