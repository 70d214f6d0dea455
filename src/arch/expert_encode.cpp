// encode_layer_experts(): canonical experts (or verbatim copies) -> a family's on-disk tensors:
// per expert, fused concat, GPT-OSS interleaved, or MXFP4 blocks/scales.
#include <cstring>
#include <functional>
#include <optional>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "arch/mxfp4.h"
#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

using Role = TensorRole;

class LayerEncoder {
 public:
  LayerEncoder(const ModelSpec& spec, int64_t layer, const std::vector<ExpertSource>& experts, DType float_dtype)
      : spec_(spec), layer_(layer), experts_(experts), float_dtype_(float_dtype), cache_(experts.size()) {}

  // Output tensor for `role` with every expert's chunk filled by `fill(e, chunk)`.
  EncodedTensor tensor(Role role, DType dtype, const std::function<void(size_t, uint8_t*, size_t)>& fill) {
    EncodedTensor t;
    t.decl = TensorDecl{tensor_name(spec_, role, layer_), dtype, role_shape(spec_, role)};
    t.bytes.resize(t.decl.num_bytes());
    const size_t per = t.bytes.size() / experts_.size();
    for (size_t e = 0; e < experts_.size(); ++e) fill(e, t.bytes.data() + e * per, per);
    return t;
  }

  // Bytes of the source expert's slice of `role` when they can be copied verbatim: same layout,
  // same H/F, same dtype; nullopt otherwise.
  std::optional<ByteView> raw(size_t e, Role role, DType dtype) const {
    const ExpertSource& src = experts_[e];
    if (src.weights || !src.spec || !src.store) return std::nullopt;
    const ModelSpec& s = *src.spec;
    if (s.moe.layout != spec_.moe.layout || s.hidden_size != spec_.hidden_size ||
        s.moe.moe_intermediate_size != spec_.moe.moe_intermediate_size || s.model_type != spec_.model_type)
      return std::nullopt;
    const bool per_expert = role_is_per_expert(role);
    auto found = src.store->find(tensor_name(s, role, src.layer, per_expert ? src.expert : -1));
    if (!found || found->info->dtype != dtype) return std::nullopt;
    ByteView all = found->bytes();
    if (per_expert) return all;
    const size_t per = all.size / static_cast<size_t>(found->info->shape[0]);
    return ByteView{all.data + static_cast<size_t>(src.expert) * per, per};
  }

  const ExpertWeights& weights(size_t e) {
    const ExpertSource& src = experts_[e];
    if (src.weights) return check(*src.weights, e);
    if (!cache_[e]) {
      if (!src.spec || !src.store) fail("expert source ", e, " names neither weights nor a store");
      cache_[e] = read_expert(*src.spec, *src.store, src.layer, src.expert);
    }
    return check(*cache_[e], e);
  }

  // Copies verbatim when possible, else encodes the floats `make(e)` returns.
  void fill_floats(size_t e, Role role, DType dtype, uint8_t* dst, size_t bytes,
                   const std::function<std::vector<float>(const ExpertWeights&)>& make) {
    if (auto view = raw(e, role, dtype); view && view->size == bytes) {
      std::memcpy(dst, view->data, bytes);
      return;
    }
    std::vector<float> values = make(weights(e));
    if (values.size() * dtype_size(dtype) != bytes) fail("internal error: encoded size mismatch for ", role_name(role));
    encode_floats(dtype, values.data(), values.size(), dst);
  }

  const ModelSpec& spec() const { return spec_; }
  DType float_dtype() const { return float_dtype_; }

 private:
  const ExpertWeights& check(const ExpertWeights& w, size_t e) const {
    const int64_t H = spec_.hidden_size, F = spec_.moe.moe_intermediate_size;
    const bool gated = spec_.activation != Activation::GeluNew;
    if (w.hidden_size != H || w.intermediate_size != F || static_cast<int64_t>(w.gate.size()) != (gated ? F * H : 0) ||
        static_cast<int64_t>(w.up.size()) != F * H || static_cast<int64_t>(w.down.size()) != H * F)
      fail("expert ", e, " for layer ", layer_, " has sizes H=", w.hidden_size, " F=", w.intermediate_size,
           "; the output needs H=", H, " F=", F, gated ? " with gate, up and down" : " with up and down (no gate)");
    return w;
  }

  const ModelSpec& spec_;
  int64_t layer_;
  const std::vector<ExpertSource>& experts_;
  DType float_dtype_;
  std::vector<std::optional<ExpertWeights>> cache_;
};

// gate/up rows interleaved: row 2f = gate[f], row 2f+1 = up[f] -> [2F, H].
std::vector<float> interleaved_rows(const ExpertWeights& w) {
  const int64_t F = w.intermediate_size, H = w.hidden_size;
  std::vector<float> rows(2 * F * H);
  for (int64_t f = 0; f < F; ++f) {
    std::copy(w.gate.begin() + f * H, w.gate.begin() + (f + 1) * H, rows.begin() + 2 * f * H);
    std::copy(w.up.begin() + f * H, w.up.begin() + (f + 1) * H, rows.begin() + (2 * f + 1) * H);
  }
  return rows;
}

std::vector<float> interleaved_bias(const ExpertWeights& w) {
  const int64_t F = w.intermediate_size;
  std::vector<float> b(2 * F, 0.0f);
  for (int64_t f = 0; f < F; ++f) {
    if (!w.gate_bias.empty()) b[2 * f] = w.gate_bias[f];
    if (!w.up_bias.empty()) b[2 * f + 1] = w.up_bias[f];
  }
  return b;
}

}  // namespace

std::vector<EncodedTensor> encode_layer_experts(const ModelSpec& spec, int64_t layer,
                                                const std::vector<ExpertSource>& experts, DType float_dtype) {
  if (layer < 0 || layer >= spec.num_layers || !spec.is_moe[layer])
    fail("layer ", layer, " of the output ", spec.model_type, " model is not a MoE layer");
  if (static_cast<int64_t>(experts.size()) != spec.moe.num_experts)
    fail("layer ", layer, ": ", experts.size(), " experts given, the output spec has ", spec.moe.num_experts);
  if (float_dtype != DType::F32 && float_dtype != DType::F16 && float_dtype != DType::BF16)
    fail("experts can be written as F32, F16 or BF16, not ", dtype_name(float_dtype));
  LayerEncoder enc(spec, layer, experts, float_dtype);
  const int64_t H = spec.hidden_size, F = spec.moe.moe_intermediate_size;
  std::vector<EncodedTensor> out;
  const DType fd = float_dtype;
  switch (spec.moe.layout) {
    case ExpertLayout::PerExpert:
      for (size_t e = 0; e < experts.size(); ++e) {
        for (Role role : {Role::ExpertGate, Role::ExpertUp, Role::ExpertDown, Role::ExpertUpBias, Role::ExpertDownBias}) {
          if (!spec_has_role(spec, role, layer)) continue;
          EncodedTensor t;
          t.decl = TensorDecl{tensor_name(spec, role, layer, static_cast<int64_t>(e)), fd, role_shape(spec, role)};
          t.bytes.resize(t.decl.num_bytes());
          enc.fill_floats(e, role, fd, t.bytes.data(), t.bytes.size(), [&](const ExpertWeights& w) {
            switch (role) {
              case Role::ExpertGate: return w.gate;
              case Role::ExpertUp: return w.up;
              case Role::ExpertUpBias: return w.up_bias.empty() ? std::vector<float>(F, 0.0f) : w.up_bias;
              case Role::ExpertDownBias: return w.down_bias.empty() ? std::vector<float>(H, 0.0f) : w.down_bias;
              default: return w.down;
            }
          });
          out.push_back(std::move(t));
        }
      }
      return out;
    case ExpertLayout::FusedConcat:
      out.push_back(enc.tensor(Role::ExpertsGateUp, fd, [&](size_t e, uint8_t* dst, size_t n) {
        enc.fill_floats(e, Role::ExpertsGateUp, fd, dst, n, [](const ExpertWeights& w) {
          std::vector<float> v = w.gate;
          v.insert(v.end(), w.up.begin(), w.up.end());
          return v;
        });
      }));
      out.push_back(enc.tensor(Role::ExpertsDown, fd, [&](size_t e, uint8_t* dst, size_t n) {
        enc.fill_floats(e, Role::ExpertsDown, fd, dst, n, [](const ExpertWeights& w) { return w.down; });
      }));
      return out;
    case ExpertLayout::FusedInterleaved:
      out.push_back(enc.tensor(Role::ExpertsGateUp, fd, [&](size_t e, uint8_t* dst, size_t n) {
        enc.fill_floats(e, Role::ExpertsGateUp, fd, dst, n, [&](const ExpertWeights& w) {
          std::vector<float> rows = interleaved_rows(w), v(2 * F * H);  // [2F, H] -> [H, 2F]
          for (int64_t r = 0; r < 2 * F; ++r)
            for (int64_t h = 0; h < H; ++h) v[h * 2 * F + r] = rows[r * H + h];
          return v;
        });
      }));
      out.push_back(enc.tensor(Role::ExpertsDown, fd, [&](size_t e, uint8_t* dst, size_t n) {
        enc.fill_floats(e, Role::ExpertsDown, fd, dst, n, [&](const ExpertWeights& w) {
          std::vector<float> v(F * H);  // [H, F] -> [F, H]
          for (int64_t h = 0; h < H; ++h)
            for (int64_t f = 0; f < F; ++f) v[f * H + h] = w.down[h * F + f];
          return v;
        });
      }));
      break;
    case ExpertLayout::Mxfp4: {
      // Blocks and scales of one projection are produced together; quantise once per expert.
      for (bool gate_up : {true, false}) {
        const Role blocks_role = gate_up ? Role::ExpertsGateUpBlocks : Role::ExpertsDownBlocks;
        const Role scales_role = gate_up ? Role::ExpertsGateUpScales : Role::ExpertsDownScales;
        const int64_t rows = gate_up ? 2 * F : H, cols = gate_up ? H : F;
        EncodedTensor blocks = enc.tensor(blocks_role, DType::U8, [](size_t, uint8_t*, size_t) {});
        EncodedTensor scales = enc.tensor(scales_role, DType::U8, [](size_t, uint8_t*, size_t) {});
        const size_t block_bytes = blocks.bytes.size() / experts.size();
        const size_t scale_bytes = scales.bytes.size() / experts.size();
        for (size_t e = 0; e < experts.size(); ++e) {
          uint8_t* b = blocks.bytes.data() + e * block_bytes;
          uint8_t* s = scales.bytes.data() + e * scale_bytes;
          auto raw_b = enc.raw(e, blocks_role, DType::U8), raw_s = enc.raw(e, scales_role, DType::U8);
          if (raw_b && raw_s && raw_b->size == block_bytes && raw_s->size == scale_bytes) {
            std::memcpy(b, raw_b->data, block_bytes);  // untouched expert: bit-identical
            std::memcpy(s, raw_s->data, scale_bytes);
            continue;
          }
          const ExpertWeights& w = enc.weights(e);
          std::vector<float> m = gate_up ? interleaved_rows(w) : w.down;
          mxfp4_quantize_rows(m.data(), rows, cols, b, s);
        }
        out.push_back(std::move(blocks));
        out.push_back(std::move(scales));
      }
      break;
    }
  }
  // Fused GPT-OSS-style biases (bf16 next to MXFP4, float_dtype next to bf16 experts).
  if (spec.moe.expert_bias && spec.moe.layout != ExpertLayout::PerExpert) {
    const DType bd = spec.moe.layout == ExpertLayout::Mxfp4 ? DType::BF16 : fd;
    out.push_back(enc.tensor(Role::ExpertsGateUpBias, bd, [&](size_t e, uint8_t* dst, size_t n) {
      enc.fill_floats(e, Role::ExpertsGateUpBias, bd, dst, n, interleaved_bias);
    }));
    out.push_back(enc.tensor(Role::ExpertsDownBias, bd, [&](size_t e, uint8_t* dst, size_t n) {
      enc.fill_floats(e, Role::ExpertsDownBias, bd, dst, n, [&](const ExpertWeights& w) {
        return w.down_bias.empty() ? std::vector<float>(H, 0.0f) : w.down_bias;
      });
    }));
  }
  return out;
}

}  // namespace moeforge
