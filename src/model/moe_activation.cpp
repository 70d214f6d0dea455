// Expert activations (SwiGLU, GPT-OSS clamped GLU, gelu_new) with hand-written backward, used by
// the fused expert autograd function in moe_experts.cpp.
#include <torch/torch.h>

#include <cmath>

#include "model/moe_experts.h"

namespace moeforge::model {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;
}  // namespace

torch::Tensor activation_forward(const torch::Tensor& pre_NR, const ActivationOptions& activation) {
  switch (activation.kind) {
    case Activation::SiluGlu: {
      auto halves = pre_NR.chunk(2, -1);  // gate [N,F], up [N,F]
      return torch::silu(halves[0]) * halves[1];
    }
    case Activation::GptOssClampedGlu: {
      auto halves = pre_NR.chunk(2, -1);
      auto gate = halves[0].clamp_max(activation.limit);
      auto up = halves[1].clamp(-activation.limit, activation.limit);
      return (up + 1) * (gate * torch::sigmoid(gate * activation.alpha));
    }
    case Activation::GeluNew:
      return torch::gelu(pre_NR, "tanh");
  }
  return {};
}

torch::Tensor activation_backward(const torch::Tensor& pre_NR, const torch::Tensor& grad_NF,
                                  const ActivationOptions& activation) {
  switch (activation.kind) {
    case Activation::SiluGlu: {
      auto halves = pre_NR.chunk(2, -1);
      const auto& gate = halves[0];
      const auto& up = halves[1];
      auto sig = torch::sigmoid(gate);
      auto silu = gate * sig;
      auto d_silu = sig * (1 + gate * (1 - sig));  // d/dg [g * sigmoid(g)]
      return torch::cat({grad_NF * up * d_silu, grad_NF * silu}, -1);
    }
    case Activation::GptOssClampedGlu: {
      auto halves = pre_NR.chunk(2, -1);
      auto gate = halves[0].clamp_max(activation.limit);
      auto up = halves[1].clamp(-activation.limit, activation.limit);
      auto sig = torch::sigmoid(gate * activation.alpha);
      auto glu = gate * sig;
      auto d_glu = sig + activation.alpha * gate * sig * (1 - sig);
      // clamp passes gradient where the input lies inside the closed interval (as torch.clamp does)
      auto gate_pass = (halves[0] <= activation.limit).to(grad_NF.dtype());
      auto up_pass = ((halves[1] >= -activation.limit) & (halves[1] <= activation.limit)).to(grad_NF.dtype());
      return torch::cat({grad_NF * (up + 1) * d_glu * gate_pass, grad_NF * glu * up_pass}, -1);
    }
    case Activation::GeluNew: {
      const auto& x = pre_NR;
      auto inner = kSqrt2OverPi * (x + kGeluCubic * x.pow(3));
      auto tanh_inner = torch::tanh(inner);
      auto d_inner = kSqrt2OverPi * (1 + 3 * kGeluCubic * x.pow(2));
      auto derivative = 0.5 * (1 + tanh_inner) + 0.5 * x * (1 - tanh_inner.pow(2)) * d_inner;
      return grad_NF * derivative;
    }
  }
  return {};
}

}  // namespace moeforge::model
