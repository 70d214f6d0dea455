#include "model/linear.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/cpu_features.h"

namespace moeforge::model {

namespace {

// Rows from which an fp32 product beats the 16-bit fallback even counting the weight's fp32 copy.
constexpr int64_t kFp32ComputeRows = 16;
// Largest fp32 copy of a right operand made at once (32 MB): a larger one is converted and multiplied
// in column blocks, so a 201,088-token head's transient is a slab, not a 2.3 GB fp32 twin per call.
constexpr int64_t kFp32BlockValues = 8ll << 20;

bool software_16bit(const torch::Tensor& t) {
  static const bool software = !cpu_has_bf16_matmul();
  const auto type = t.scalar_type();
  return software && t.is_cpu() && (type == torch::kBFloat16 || type == torch::kHalf);
}

// A right operand made in fp32 for a 16-bit left one (decoded MXFP4 experts) counts as 16-bit: few
// rows narrow it and take the 16-bit GEMM, so packed and dense stacks stay bitwise alike.
bool fp32_compute(const torch::Tensor& a, const torch::Tensor& b) {
  const bool same = b.scalar_type() == a.scalar_type() || b.scalar_type() == torch::kFloat32;
  return software_16bit(a) && same && a.numel() >= kFp32ComputeRows * a.size(-1);
}

// The right operand in the left one's dtype (the 16-bit GEMM takes no mixed operands).
torch::Tensor same_dtype(const torch::Tensor& b, const torch::Tensor& a) { return b.to(a.scalar_type()); }

torch::Tensor f32(const torch::Tensor& t) { return t.to(torch::kFloat32); }

torch::Tensor linear_by_gemm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto x2 = x.reshape({-1, w.size(1)});
  auto out = torch::empty({x2.size(0), w.size(0)}, x.options());
  gemm_into(out, x2, w.t(), b);
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return out.view(sizes);
}

// The linear layer with 16-bit tensors on such a CPU: products in fp32 (gemm), only the 16-bit
// x and w kept for the backward (not fp32 copies: training memory stays that of bf16).
class Linear16 : public torch::autograd::Function<Linear16> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& b) {
    ctx->save_for_backward({x, w});
    const bool has_b = b.numel() > 0;  // autograd::Function takes no undefined input: empty = no bias
    ctx->saved_data["has_b"] = has_b;
    return linear_by_gemm(x, w, has_b ? b : torch::Tensor());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1];
    auto g = grads[0].reshape({-1, w.size(0)}).to(x.scalar_type());  // [N, out]
    torch::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = gemm(g, w).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = gemm(g.t(), x.reshape({-1, w.size(1)}));
    if (ctx->saved_data["has_b"].toBool() && ctx->needs_input_grad(2)) db = f32(g).sum(0).to(g.scalar_type());
    return {dx, dw, db};
  }
};

}  // namespace

torch::ScalarType decoded_operand_dtype(torch::ScalarType dtype, const torch::Device& device) {
  static const bool software = !cpu_has_bf16_matmul();
  const bool half = dtype == torch::kBFloat16 || dtype == torch::kHalf;
  return software && half && device.is_cpu() ? torch::kFloat32 : dtype;
}

torch::Tensor fast_right_operand(const torch::Tensor& b) {
  if (software_16bit(b) && b.dim() == 2 && b.stride(1) == 1) return b.t().contiguous().t();
  return b;
}

// out = a b (+ bias) computed in fp32, b converted a block of columns at a time.
void fp32_gemm_into(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias) {
  const auto a32 = f32(a);
  const int64_t K = b.size(0), N = b.size(1);
  const int64_t block = b.numel() <= kFp32BlockValues ? N : std::max<int64_t>(64, kFp32BlockValues / K / 64 * 64);
  for (int64_t j = 0; j < N; j += block) {
    const int64_t n = std::min(block, N - j);
    const auto b32 = f32(b.narrow(1, j, n));
    auto part = bias.defined() ? torch::addmm(f32(bias.narrow(0, j, n)), a32, b32) : torch::mm(a32, b32);
    out.narrow(1, j, n).copy_(part);
  }
}

void gemm_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias) {
  if (fp32_compute(a, b)) {
    fp32_gemm_into(out, a, b, bias);
    return;
  }
  const auto right = fast_right_operand(same_dtype(b, a));
  if (bias.defined())
    torch::addmm_out(out, bias, a, right);
  else
    torch::mm_out(out, a, right);
}

torch::Tensor gemm(const torch::Tensor& a, const torch::Tensor& b) {
  if (fp32_compute(a, b)) {
    auto out = torch::empty({a.size(0), b.size(1)}, a.options());
    fp32_gemm_into(out, a, b, torch::Tensor());
    return out;
  }
  return torch::mm(a, fast_right_operand(same_dtype(b, a)));
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (software_16bit(w) && x.scalar_type() == w.scalar_type() && x.dim() >= 1 && x.size(-1) == w.size(1) &&
      (!b.defined() || b.scalar_type() == w.scalar_type())) {
    const bool grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
    if (grad) return b.defined() ? Linear16::apply(x, w, b) : Linear16::apply(x, w, torch::empty({0}, w.options()));
    if (fp32_compute(x, w)) return linear_by_gemm(x, w, b);
  }
  return b.defined() ? torch::nn::functional::linear(x, w, b) : torch::nn::functional::linear(x, w);
}

}  // namespace moeforge::model
