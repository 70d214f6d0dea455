#include "model/expert_parallel.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdint>

namespace moeforge::model {

namespace {

torch::Tensor timed_exchange(const ExpertParallel& ep, const torch::Tensor& rows, const std::vector<int64_t>& send,
                             const std::vector<int64_t>& recv) {
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ep.all_to_all(rows, send, recv);
  if (ep.exchange_seconds) *ep.exchange_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

// The exchange of rows as an autograd function: the gradient goes back by the reverse exchange.
// Every rank's graph holds the same exchanges in the same order (the layers' dependency chain
// orders them), so the backward's collectives pair up across ranks.
class ExchangeFunction : public torch::autograd::Function<ExchangeFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& rows, std::vector<int64_t> send,
                               std::vector<int64_t> recv, int64_t ep_address) {
    ctx->saved_data["send"] = send;
    ctx->saved_data["recv"] = recv;
    // The ExpertParallel outlives the backward (the trainer's, for the whole run); an IValue holds
    // no raw pointer, so its address travels as an integer.
    ctx->saved_data["ep"] = ep_address;
    return timed_exchange(*reinterpret_cast<const ExpertParallel*>(static_cast<intptr_t>(ep_address)), rows, send, recv);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto& ep = *reinterpret_cast<const ExpertParallel*>(static_cast<intptr_t>(ctx->saved_data["ep"].toInt()));
    const auto send = ctx->saved_data["send"].toIntVector(), recv = ctx->saved_data["recv"].toIntVector();
    return {timed_exchange(ep, grads[0].contiguous(), recv, send), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// out[t] = sum of w[i] y[i] over the rows i of token t, with run_experts' arithmetic: products and
// sums in the run dtype, the weights' gradient (a sum over the hidden size) in the weights' fp32.
class WeightedCombine : public torch::autograd::Function<WeightedCombine> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y, const torch::Tensor& w,
                               const torch::Tensor& token_of, int64_t tokens) {
    ctx->save_for_backward({y, w, token_of});
    return torch::zeros({tokens, y.size(1)}, y.options()).index_add_(0, token_of, y * w.to(y.scalar_type()).unsqueeze(1));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &y = saved[0], &w = saved[1], &token_of = saved[2];
    auto grad_rows = grads[0].index_select(0, token_of);  // [rows, H]
    torch::Tensor grad_w;
    if (ctx->needs_input_grad(1)) grad_w = (grad_rows.to(w.scalar_type()) * y.to(w.scalar_type())).sum(-1);
    torch::Tensor grad_y;
    if (ctx->needs_input_grad(0)) grad_y = grad_rows * w.to(y.scalar_type()).unsqueeze(1);
    return {grad_y, grad_w, torch::Tensor(), torch::Tensor()};
  }
};

std::vector<int64_t> host_counts(const torch::Tensor& counts) {
  auto c = counts.to(torch::kCPU, torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

torch::Tensor run_experts_parallel(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                   const torch::Tensor& weights_TK, const StackedExperts& experts,
                                   const ActivationOptions& activation, const ExpertParallel& ep) {
  if (!ep.active()) return run_experts(x_TH, expert_ids_TK, weights_TK, experts, activation);
  const int64_t K = expert_ids_TK.size(1), E = experts.num_experts(), N = ep.size;
  const int64_t address = static_cast<int64_t>(reinterpret_cast<intptr_t>(&ep));
  // Owner of expert e: the last rank r with first_expert(r) <= e, i.e. ((e + 1) N - 1) / E.
  auto ids = expert_ids_TK.reshape({-1});
  auto owner = torch::div((ids + 1) * N - 1, E, "floor");
  auto order = std::get<1>(owner.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));  // rows grouped by destination
  const std::vector<int64_t> send = host_counts(torch::bincount(owner, {}, N));
  const std::vector<int64_t> one_each(N, 1);
  const std::vector<int64_t> recv = host_counts(timed_exchange(ep, torch::tensor(send, torch::kInt64), one_each, one_each));
  auto token_of = torch::div(order, K, "floor");
  auto x_recv = ExchangeFunction::apply(x_TH.index_select(0, token_of), send, recv, address);
  auto ids_recv = timed_exchange(ep, ids.index_select(0, order), send, recv).to(x_TH.device());
  // Owners run their experts unweighted (weight 1 is exact); the tokens' ranks weight and sum.
  const int64_t M = x_recv.size(0);
  auto y_recv = run_experts(x_recv, ids_recv.view({M, 1}), torch::ones({M, 1}, weights_TK.options().requires_grad(false)), experts,
                            activation);
  auto y_back = ExchangeFunction::apply(y_recv, recv, send, address);
  return WeightedCombine::apply(y_back, weights_TK.reshape({-1}).index_select(0, order), token_of, x_TH.size(0));
}

}  // namespace moeforge::model
