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
  if (ep.tally) ep.tally->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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

std::vector<int64_t> host_counts(const torch::Tensor& counts) {
  auto c = counts.to(torch::kCPU, torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Exclusive prefix sums of per-rank counts: where each rank's block starts.
torch::Tensor block_starts(const torch::Tensor& counts) { return counts.cumsum(0) - counts; }

}  // namespace

torch::Tensor run_experts_parallel(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                   const torch::Tensor& weights_TK, const StackedExperts& experts,
                                   const ActivationOptions& activation, const ExpertParallel& ep) {
  if (!ep.active()) return run_experts(x_TH, expert_ids_TK, weights_TK, experts, activation);
  const int64_t T = x_TH.size(0), K = expert_ids_TK.size(1), E = experts.num_experts(), N = ep.size;
  const int64_t address = static_cast<int64_t>(reinterpret_cast<intptr_t>(&ep));
  const auto dev = x_TH.device();
  // Owner of expert e: the last rank r with first_expert(r) <= e, i.e. ((e + 1) N - 1) / E.
  auto ids = expert_ids_TK.reshape({-1}).to(torch::kInt64);  // picks [T K]
  auto owner = torch::div((ids + 1) * N - 1, E, "floor");
  auto token = torch::div(torch::arange(T * K, ids.options()), K, "floor");
  // Picks grouped by destination and, within it, by token; a token goes to an owner once however
  // many of its picks that owner computes (one row per (token, owner) pair).
  auto [pair_key_of_pick, order] = (owner * T + token).sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  auto [pair_key, pair_of_pick, unused_counts] = torch::unique_consecutive(pair_key_of_pick, /*return_inverse=*/true);
  auto pair_owner = torch::div(pair_key, T, "floor"), pair_token = pair_key.remainder(T);
  auto send_pairs = torch::bincount(pair_owner, {}, N), send_picks = torch::bincount(owner, {}, N);
  if (ep.tally) ep.tally->picks += T * K, ep.tally->token_rows += pair_key.size(0);
  // Counts first: [N, 2] (pairs, picks) to each rank, one row each.
  const std::vector<int64_t> one_each(N, 1);
  auto recv_counts = timed_exchange(ep, torch::stack({send_pairs, send_picks}, 1).cpu(), one_each, one_each);
  const auto sp = host_counts(send_pairs), sk = host_counts(send_picks);
  const auto rp = host_counts(recv_counts.select(1, 0)), rk = host_counts(recv_counts.select(1, 1));
  // Each pick travels as (expert, its pair's index within the block sent to its owner) and its weight.
  auto owner_of_pick = owner.index_select(0, order);
  auto pair_in_block = pair_of_pick - block_starts(send_pairs).index_select(0, owner_of_pick);
  auto meta = timed_exchange(ep, torch::stack({ids.index_select(0, order), pair_in_block}, 1), sk, rk).to(dev);
  auto x_recv = ExchangeFunction::apply(x_TH.index_select(0, pair_token), sp, rp, address);
  auto w_recv = ExchangeFunction::apply(weights_TK.reshape({-1}).index_select(0, order), sk, rk, address);
  // The owner runs its experts weighted and sums each pair's picks; the token's rank sums its pairs.
  const int64_t M = meta.size(0);
  auto recv_pairs_t = torch::tensor(rp, torch::kInt64).to(dev), recv_picks_t = torch::tensor(rk, torch::kInt64).to(dev);
  auto sender = torch::repeat_interleave(torch::arange(N, recv_picks_t.options()), recv_picks_t, /*dim=*/0, /*output_size=*/M);
  auto pair_index = meta.select(1, 1) + block_starts(recv_pairs_t).index_select(0, sender);
  auto y_picks = run_experts(x_recv.index_select(0, pair_index), meta.select(1, 0).reshape({M, 1}), w_recv.reshape({M, 1}), experts,
                             activation);
  auto y_pairs = torch::zeros({x_recv.size(0), x_TH.size(1)}, y_picks.options()).index_add(0, pair_index, y_picks);
  auto y_back = ExchangeFunction::apply(y_pairs, rp, sp, address);
  return torch::zeros({T, x_TH.size(1)}, y_back.options()).index_add(0, pair_token, y_back);
}

}  // namespace moeforge::model
