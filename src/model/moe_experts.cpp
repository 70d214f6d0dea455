// Sorted dispatch + per-expert GEMMs + scatter, as one autograd function (see moe_experts.h).
#include "model/moe_experts.h"

#include <torch/torch.h>

#include "common/error.h"

namespace moeforge::model {

namespace {

// Assignment bookkeeping shared by forward and backward.
struct Dispatch {
  torch::Tensor order;     // [TK] positions in the flattened [T*K] assignments, sorted by expert
  torch::Tensor token_of;  // [TK] token index of each sorted assignment
  std::vector<int64_t> counts;  // tokens per expert (host), E entries
};

Dispatch make_dispatch(const torch::Tensor& expert_ids_TK, int64_t num_experts) {
  Dispatch d;
  auto flat_ids = expert_ids_TK.reshape({-1});
  d.order = std::get<1>(flat_ids.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));  // [TK]
  d.token_of = d.order.div(expert_ids_TK.size(1), "floor");                                // [TK]
  auto counts = torch::bincount(flat_ids, {}, num_experts).to(torch::kCPU);                // [E]
  d.counts.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_experts);
  return d;
}

class ExpertsFunction : public torch::autograd::Function<ExpertsFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x_TH,
                               torch::Tensor weights_TK, torch::Tensor w_in, torch::Tensor b_in,
                               torch::Tensor w_out, torch::Tensor b_out, torch::Tensor expert_ids_TK,
                               int64_t activation_kind, double limit, double alpha) {
    ActivationOptions activation{static_cast<ExpertActivation>(activation_kind), limit, alpha};
    const int64_t tokens = x_TH.size(0), hidden = x_TH.size(1), experts = w_in.size(0);
    const int64_t rows = w_in.size(1), width = w_out.size(2);
    Dispatch d = make_dispatch(expert_ids_TK, experts);
    if (b_in.numel() == 0) b_in = torch::Tensor();
    if (b_out.numel() == 0) b_out = torch::Tensor();
    auto x_sorted = x_TH.index_select(0, d.token_of);                  // [TK, H]
    auto pre_sorted = torch::empty({x_sorted.size(0), rows}, x_TH.options());   // [TK, R]
    auto y_sorted = torch::empty({x_sorted.size(0), hidden}, x_TH.options());   // [TK, H] unweighted
    int64_t offset = 0;
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t n = d.counts[e];
      if (n == 0) continue;
      auto x_rows = x_sorted.narrow(0, offset, n);      // [n, H]
      auto pre_rows = pre_sorted.narrow(0, offset, n);  // [n, R]
      if (b_in.defined())
        torch::addmm_out(pre_rows, b_in[e], x_rows, w_in[e].t());
      else
        torch::mm_out(pre_rows, x_rows, w_in[e].t());
      auto act_rows = activation_forward(pre_rows, activation);  // [n, F]
      auto y_rows = y_sorted.narrow(0, offset, n);               // [n, H]
      if (b_out.defined())
        torch::addmm_out(y_rows, b_out[e], act_rows, w_out[e].t());
      else
        torch::mm_out(y_rows, act_rows, w_out[e].t());
      offset += n;
    }
    (void)width;
    auto w_sorted = weights_TK.reshape({-1}).index_select(0, d.order).to(x_TH.scalar_type());  // [TK]
    auto out_TH = torch::zeros({tokens, hidden}, x_TH.options());
    out_TH.index_add_(0, d.token_of, y_sorted * w_sorted.unsqueeze(1));
    ctx->saved_data["has_b_in"] = b_in.defined();
    ctx->saved_data["has_b_out"] = b_out.defined();
    ctx->save_for_backward({x_TH, weights_TK, w_in, b_in, w_out, b_out, pre_sorted, y_sorted, d.order, d.token_of});
    ctx->saved_data["counts"] = c10::IValue(d.counts);
    ctx->saved_data["activation"] = activation_kind;
    ctx->saved_data["limit"] = limit;
    ctx->saved_data["alpha"] = alpha;
    return out_TH;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x_TH = saved[0];
    const auto& weights_TK = saved[1];
    const auto& w_in = saved[2];
    const auto b_in = ctx->saved_data["has_b_in"].toBool() ? saved[3] : torch::Tensor();
    const auto& w_out = saved[4];
    const auto b_out = ctx->saved_data["has_b_out"].toBool() ? saved[5] : torch::Tensor();
    const auto& pre_sorted = saved[6];
    const auto& y_sorted = saved[7];
    const auto& order = saved[8];
    const auto& token_of = saved[9];
    std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    ActivationOptions activation{static_cast<ExpertActivation>(ctx->saved_data["activation"].toInt()),
                                 ctx->saved_data["limit"].toDouble(), ctx->saved_data["alpha"].toDouble()};
    const bool need_x = ctx->needs_input_grad(0), need_weights = ctx->needs_input_grad(1);
    const bool need_w_in = ctx->needs_input_grad(2), need_b_in = b_in.defined() && ctx->needs_input_grad(3);
    const bool need_w_out = ctx->needs_input_grad(4), need_b_out = b_out.defined() && ctx->needs_input_grad(5);

    auto grad_out_TH = grads[0].contiguous();
    auto grad_y_sorted = grad_out_TH.index_select(0, token_of);  // [TK, H] gradient of weighted y
    torch::Tensor grad_weights_TK;
    if (need_weights) {
      auto grad_w_sorted = (grad_y_sorted.to(weights_TK.scalar_type()) * y_sorted.to(weights_TK.scalar_type())).sum(-1);  // [TK]
      grad_weights_TK = torch::zeros({order.size(0)}, grad_w_sorted.options())
                            .index_copy_(0, order, grad_w_sorted)
                            .view(weights_TK.sizes())
                            .to(weights_TK.scalar_type());
    }
    auto w_sorted = weights_TK.reshape({-1}).index_select(0, order).to(x_TH.scalar_type());
    grad_y_sorted.mul_(w_sorted.unsqueeze(1));  // now the gradient of unweighted y
    auto x_sorted = x_TH.index_select(0, token_of);

    torch::Tensor grad_w_in = need_w_in ? torch::zeros_like(w_in) : torch::Tensor();
    torch::Tensor grad_b_in = need_b_in ? torch::zeros_like(b_in) : torch::Tensor();
    torch::Tensor grad_w_out = need_w_out ? torch::zeros_like(w_out) : torch::Tensor();
    torch::Tensor grad_b_out = need_b_out ? torch::zeros_like(b_out) : torch::Tensor();
    torch::Tensor grad_x_sorted = need_x ? torch::empty_like(x_sorted) : torch::Tensor();
    int64_t offset = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      const int64_t n = counts[e];
      if (n == 0) continue;
      auto x_rows = x_sorted.narrow(0, offset, n);         // [n, H]
      auto pre_rows = pre_sorted.narrow(0, offset, n);     // [n, R]
      auto grad_y_rows = grad_y_sorted.narrow(0, offset, n);  // [n, H]
      auto act_rows = activation_forward(pre_rows, activation);  // [n, F] recomputed, cheap
      if (need_w_out) {
        auto slot = grad_w_out[e];
        torch::mm_out(slot, grad_y_rows.t(), act_rows);
      }  // [H, F]
      if (need_b_out) grad_b_out[e].copy_(grad_y_rows.sum(0));
      auto grad_act = torch::mm(grad_y_rows, w_out[e]);                          // [n, F]
      auto grad_pre = activation_backward(pre_rows, grad_act, activation);       // [n, R]
      if (need_w_in) {
        auto slot = grad_w_in[e];
        torch::mm_out(slot, grad_pre.t(), x_rows);
      }          // [R, H]
      if (need_b_in) grad_b_in[e].copy_(grad_pre.sum(0));
      if (need_x) {
        auto slot = grad_x_sorted.narrow(0, offset, n);
        torch::mm_out(slot, grad_pre, w_in[e]);
      }  // [n, H]
      offset += n;
    }
    torch::Tensor grad_x_TH;
    if (need_x) grad_x_TH = torch::zeros_like(x_TH).index_add_(0, token_of, grad_x_sorted);
    return {grad_x_TH, grad_weights_TK, grad_w_in, grad_b_in, grad_w_out, grad_b_out,
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_shapes(const torch::Tensor& x_TH, const torch::Tensor& ids, const torch::Tensor& weights,
                  const StackedExperts& experts, const ActivationOptions& activation) {
  if (x_TH.dim() != 2) fail("MoE input must be [tokens, hidden]");
  if (ids.sizes() != weights.sizes() || ids.dim() != 2 || ids.size(0) != x_TH.size(0))
    fail("MoE routing must be [tokens, k] for both ids and weights");
  const int64_t rows = experts.w_in.size(1), width = experts.w_out.size(2);
  if (experts.w_in.size(2) != x_TH.size(1) || experts.w_out.size(1) != x_TH.size(1))
    fail("MoE expert weights do not match hidden size ", x_TH.size(1));
  if (rows != (activation.gated() ? 2 * width : width))
    fail("MoE expert input projection has ", rows, " rows; expected ", activation.gated() ? 2 * width : width);
}

}  // namespace

torch::Tensor run_experts(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                          const torch::Tensor& weights_TK, const StackedExperts& experts,
                          const ActivationOptions& activation) {
  check_shapes(x_TH, expert_ids_TK, weights_TK, experts, activation);
  // autograd::Function rejects undefined inputs: an empty tensor stands for "no bias".
  auto or_empty = [&](const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}, x_TH.options()); };
  return ExpertsFunction::apply(x_TH.contiguous(), weights_TK, experts.w_in, or_empty(experts.b_in), experts.w_out,
                                or_empty(experts.b_out), expert_ids_TK, static_cast<int64_t>(activation.kind),
                                activation.limit, activation.alpha);
}

torch::Tensor run_experts_dense_reference(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                          const torch::Tensor& weights_TK, const StackedExperts& experts,
                                          const ActivationOptions& activation) {
  check_shapes(x_TH, expert_ids_TK, weights_TK, experts, activation);
  auto out = torch::zeros_like(x_TH);
  for (int64_t e = 0; e < experts.num_experts(); ++e) {
    auto pre = torch::matmul(x_TH, experts.w_in[e].t());
    if (experts.b_in.defined()) pre = pre + experts.b_in[e];
    auto y = torch::matmul(activation_forward(pre, activation), experts.w_out[e].t());
    if (experts.b_out.defined()) y = y + experts.b_out[e];
    auto gate = (weights_TK * (expert_ids_TK == e).to(weights_TK.scalar_type())).sum(-1, true);  // [T, 1]
    out = out + gate.to(x_TH.scalar_type()) * y;
  }
  return out;
}

}  // namespace moeforge::model
