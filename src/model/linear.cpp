#include "model/linear.h"

#include <torch/torch.h>

#include "common/cpu_features.h"

namespace moeforge::model {

namespace {

bool software_16bit(const torch::Tensor& t) {
  static const bool software = !cpu_has_bf16_matmul();
  const auto type = t.scalar_type();
  return software && t.is_cpu() && (type == torch::kBFloat16 || type == torch::kHalf);
}

// torch's own linear backward forms d x = d y W, a row-major W: the slow layout above. This one
// forms it from W's transposed copy; d W = d y^T x and d b as torch does.
class Linear16 : public torch::autograd::Function<Linear16> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               const torch::Tensor& b) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["has_b"] = b.defined() && b.numel() > 0;
    const bool has_b = b.numel() > 0;
    return has_b ? torch::nn::functional::linear(x, w, b) : torch::nn::functional::linear(x, w);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1];
    auto g = grads[0].reshape({-1, w.size(0)});  // [N, out]
    torch::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = torch::mm(g, fast_right_operand(w)).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = torch::mm(g.t(), x.reshape({-1, w.size(1)}));
    if (ctx->saved_data["has_b"].toBool() && ctx->needs_input_grad(2)) db = g.sum(0);
    return {dx, dw, db};
  }
};

}  // namespace

torch::Tensor fast_right_operand(const torch::Tensor& b) {
  if (software_16bit(b) && b.dim() == 2 && b.stride(1) == 1) return b.t().contiguous().t();
  return b;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  const bool grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
  if (grad && software_16bit(w) && x.scalar_type() == w.scalar_type())
    return Linear16::apply(x, w, b.defined() ? b : torch::empty({0}, w.options()));
  return b.defined() ? torch::nn::functional::linear(x, w, b) : torch::nn::functional::linear(x, w);
}

}  // namespace moeforge::model
