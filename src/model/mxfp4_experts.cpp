#include "model/mxfp4_experts.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "tensor/torch_bridge.h"

#include "arch/mxfp4.h"

namespace moeforge::model {
namespace {

// blocks [R, G, 16] + scales [R, G] of one expert -> [R, G*32] float32; `interleaved` rows
// (gate 0, up 0, gate 1, ...) come out as [gate rows; up rows].
torch::Tensor decode(const torch::Tensor& blocks, const torch::Tensor& scales, bool interleaved) {
  const int64_t R = blocks.size(0), G = blocks.size(1), C = G * kMxfp4BlockSize;
  if (blocks.is_cpu()) {
    auto b = blocks.contiguous(), s = scales.contiguous();
    auto out = torch::empty({R, C}, torch::kFloat32);
    const uint8_t* bp = b.data_ptr<uint8_t>();
    const uint8_t* sp = s.data_ptr<uint8_t>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, R, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t target = interleaved ? (r % 2) * (R / 2) + r / 2 : r;
        mxfp4_dequantize_rows(bp + r * G * kMxfp4BlockBytes, sp + r * G, 1, G, op + target * C);
      }
    });
    return out;
  }
  // Other devices: the same decode with tensor ops (a 16-entry table, ldexp by the scale).
  static const std::vector<float> table(kFp4Values, kFp4Values + 16);
  auto lut = torch::tensor(table, torch::TensorOptions().dtype(torch::kFloat32)).to(blocks.device());
  auto lo = blocks.bitwise_and(0x0F).to(torch::kLong), hi = blocks.bitwise_right_shift(4).to(torch::kLong);
  auto codes = torch::stack({lo, hi}, -1).reshape({R, G, kMxfp4BlockSize});
  auto values = lut.index({codes}) * torch::exp2(scales.to(torch::kFloat32) - 127.0).unsqueeze(-1);
  values = values.reshape({R, C});
  if (interleaved) values = values.view({R / 2, 2, C}).transpose(0, 1).reshape({R, C});
  return values;
}

}  // namespace

torch::Tensor decode_packed_in(const PackedExperts& p, int64_t e, torch::ScalarType dtype) {
  return decode(p.in_blocks[e], p.in_scales[e], /*interleaved=*/true).to(dtype);
}

torch::Tensor decode_packed_out(const PackedExperts& p, int64_t e, torch::ScalarType dtype) {
  return decode(p.out_blocks[e], p.out_scales[e], /*interleaved=*/false).to(dtype);
}

void unpack_experts(StackedExperts& experts, std::vector<int64_t> ids, torch::ScalarType dtype) {
  const PackedExperts& p = experts.packed;
  if (!p.defined()) fail("internal: unpack_experts on a dense expert stack");
  ids.insert(ids.end(), experts.unpacked.begin(), experts.unpacked.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids == experts.unpacked) return;
  std::vector<torch::Tensor> in, out;
  for (int64_t e : ids) {
    if (e < 0 || e >= p.num_experts()) fail("internal: expert ", e, " is not in a stack of ", p.num_experts());
    const int64_t row = experts.row_of(e);
    torch::NoGradGuard no_grad;
    in.push_back(row >= 0 ? experts.w_in[row] : decode_packed_in(p, e, dtype));
    out.push_back(row >= 0 ? experts.w_out[row] : decode_packed_out(p, e, dtype));
  }
  experts.w_in = torch::stack(in);
  experts.w_out = torch::stack(out);
  experts.unpacked = std::move(ids);
}

void release_packed_pages(const PackedExperts& p) {
  for (const torch::Tensor* t : {&p.in_blocks, &p.in_scales, &p.out_blocks, &p.out_scales}) release_mapped_pages(*t);
}

bool mxfp4_all_finite(const torch::Tensor& blocks, const torch::Tensor& scales) {
  auto b = blocks.contiguous(), s = scales.contiguous();
  const uint8_t* bp = b.data_ptr<uint8_t>();
  const uint8_t* sp = s.data_ptr<uint8_t>();
  float values[kMxfp4BlockSize];
  for (int64_t i = 0, n = s.numel(); i < n; ++i) {
    if (sp[i] < 253) continue;  // 6 * 2^(252 - 127) is still finite
    mxfp4_dequantize_rows(bp + i * kMxfp4BlockBytes, sp + i, 1, 1, values);
    for (float v : values)
      if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace moeforge::model
