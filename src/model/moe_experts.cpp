// Sorted dispatch + per-expert GEMMs + scatter, as one autograd function (see moe_experts.h).
#include "model/moe_experts.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <numeric>

#if __has_include(<ATen/ops/_grouped_mm.h>)
#include <ATen/ops/_grouped_mm.h>
#define MOEFORGE_HAS_GROUPED_MM 1
#else
#define MOEFORGE_HAS_GROUPED_MM 0
#endif

#include "common/error.h"
#include "model/linear.h"
#include "model/mxfp4_experts.h"

namespace moeforge::model {

namespace {

std::atomic<int> g_expert_gemm{static_cast<int>(ExpertGemm::Auto)};
std::atomic<bool> g_grouped_failed{false};  // auto mode: grouped GEMM threw once on this device/dtype

// Assignment bookkeeping shared by forward and backward.
struct Dispatch {
  torch::Tensor order;       // [TK] positions in the flattened [T*K] assignments, sorted by expert
  torch::Tensor token_of;    // [TK] token index of each sorted assignment
  torch::Tensor expert_of;   // [TK] expert of each sorted assignment
  torch::Tensor offsets;     // [E] int32 end of each expert's rows (grouped GEMM), on the device
  std::vector<int64_t> counts;  // tokens per expert (host), E entries; filled for the loop path only
};

Dispatch make_dispatch(const torch::Tensor& expert_ids_TK, int64_t num_experts, bool host_counts) {
  Dispatch d;
  auto flat_ids = expert_ids_TK.reshape({-1});
  d.order = std::get<1>(flat_ids.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));  // [TK]
  d.token_of = d.order.div(expert_ids_TK.size(1), "floor");                                // [TK]
  d.expert_of = flat_ids.index_select(0, d.order);                                         // [TK]
  auto counts = torch::bincount(flat_ids, {}, num_experts);                                // [E]
  d.offsets = counts.cumsum(0).to(torch::kInt32);
  if (host_counts) {
    counts = counts.to(torch::kCPU);  // the loop needs row counts on the host (a sync on CUDA)
    d.counts.assign(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_experts);
  }
  return d;
}

// Row counts from the device offsets (a grouped pass that fell back to the loop).
[[maybe_unused]] std::vector<int64_t> counts_of(const torch::Tensor& offsets) {
  auto ends = offsets.to(torch::kCPU, torch::kInt64);
  std::vector<int64_t> counts(ends.numel());
  int64_t previous = 0;
  for (int64_t e = 0; e < ends.numel(); ++e) {
    counts[e] = ends[e].item<int64_t>() - previous;
    previous += counts[e];
  }
  return counts;
}

#if MOEFORGE_HAS_GROUPED_MM
// torch's grouped GEMM accepts fp32/bf16/fp16 with every row stride a multiple of 16 bytes.
bool grouped_shapes_ok(const torch::Tensor& x_TH, const torch::Tensor& w_in, const torch::Tensor& w_out) {
  const auto t = x_TH.scalar_type();
  if (t != torch::kFloat32 && t != torch::kBFloat16 && t != torch::kHalf) return false;
  if (w_in.scalar_type() != t || w_out.scalar_type() != t) return false;
  const int64_t bytes = x_TH.element_size();
  for (int64_t d : {x_TH.size(1), w_in.size(1), w_out.size(2)})
    if ((d * bytes) % 16 != 0) return false;
  return true;
}
#endif

bool use_grouped(const torch::Tensor& x_TH, const torch::Tensor& w_in, const torch::Tensor& w_out) {
#if MOEFORGE_HAS_GROUPED_MM
  const auto mode = static_cast<ExpertGemm>(g_expert_gemm.load());
  if (mode == ExpertGemm::Loop || !grouped_shapes_ok(x_TH, w_in, w_out)) return false;
  if (mode == ExpertGemm::Grouped) return true;
  // Auto: on CUDA (one kernel launch per GEMM, no host sync for row counts); on CPU the per-expert
  // loop is as fast (bench/moe_layer_bench.py) and is the path the tests pin bitwise.
  return x_TH.is_cuda() && !g_grouped_failed.load();
#else
  (void)x_TH, (void)w_in, (void)w_out;
  return false;
#endif
}

// Adds a per-expert bias row to each sorted row: rows [TK, D] += bias[expert_of] ([E, D]).
[[maybe_unused]] void add_expert_bias(torch::Tensor& rows, const torch::Tensor& bias, const Dispatch& d) {
  if (bias.defined()) rows.add_(bias.index_select(0, d.expert_of));
}

// Expert e's projections: rows of the dense stacks, or decoded just in time from packed MXFP4.
struct ExpertMatrices {
  torch::Tensor w_in, w_out;  // [E, R, H], [E, H, F]; packed: the unpacked experts' rows (maybe none)
  PackedExperts packed;
  std::vector<int64_t> row;   // packed: expert -> its row of w_in/w_out, -1 while packed
  torch::ScalarType dtype = torch::kFloat32;  // of packed experts once decoded: decoded_operand_dtype (model/linear.h)
  torch::TensorOptions options;  // of the dense weights (gradient buffers)
  int64_t experts = 0, rows = 0, hidden = 0, width = 0;
  int64_t row_of(int64_t e) const { return packed.defined() ? row[e] : e; }
  torch::Tensor in(int64_t e) const {
    const int64_t r = row_of(e);
    return r < 0 ? decode_packed_in(packed, e, dtype) : w_in[r];
  }
  torch::Tensor out(int64_t e) const {
    const int64_t r = row_of(e);
    return r < 0 ? decode_packed_out(packed, e, dtype) : w_out[r];
  }
};

// `unpacked`: ascending ids of a packed stack's experts that w_in/w_out hold (empty when none).
ExpertMatrices matrices_of(const torch::Tensor& w_in, const torch::Tensor& w_out, PackedExperts packed,
                           const std::vector<int64_t>& unpacked, torch::ScalarType dtype) {
  ExpertMatrices m;
  if (packed.defined()) {
    m.packed = std::move(packed);
    m.dtype = decoded_operand_dtype(dtype, m.packed.in_blocks.device());
    m.experts = m.packed.num_experts(), m.rows = m.packed.rows(), m.hidden = m.packed.hidden(), m.width = m.packed.width();
    m.options = torch::TensorOptions().dtype(dtype).device(m.packed.in_blocks.device());
    m.row.assign(m.experts, -1);
    for (size_t i = 0; i < unpacked.size(); ++i) m.row[unpacked[i]] = static_cast<int64_t>(i);
    if (!unpacked.empty()) m.w_in = w_in, m.w_out = w_out;
  } else {
    m.w_in = w_in, m.w_out = w_out;
    m.experts = w_in.size(0), m.rows = w_in.size(1), m.hidden = w_in.size(2), m.width = w_out.size(2);
    m.options = w_in.options();
  }
  return m;
}

struct ExpertGrads {
  torch::Tensor w_in, b_in, w_out, b_out, x_sorted;
};

// What both paths need in the backward beyond the saved tensors.
struct BackwardInputs {
  const torch::Tensor& x_sorted;      // [TK, H]
  const torch::Tensor& pre_sorted;    // [TK, R]
  const torch::Tensor& grad_y_sorted; // [TK, H] gradient of the unweighted expert outputs
  const ExpertMatrices& m;
  bool need_x, need_w_in, need_b_in, need_w_out, need_b_out;
  const ActivationOptions& activation;
};

// Expert e's forward on its rows: pre = x W_in^T + b_in, y = act(pre) W_out^T + b_out.
void expert_forward(int64_t e, const torch::Tensor& x_rows, const ExpertMatrices& m, const torch::Tensor& b_in,
                    const torch::Tensor& b_out, const ActivationOptions& activation, torch::Tensor pre_rows,
                    torch::Tensor y_rows) {
  const torch::Tensor w_in_e = m.in(e), w_out_e = m.out(e);
  gemm_into(pre_rows, x_rows, w_in_e.t(), b_in.defined() ? b_in[e] : torch::Tensor());
  auto act_rows = activation_forward(pre_rows, activation);  // [n, F]
  gemm_into(y_rows, act_rows, w_out_e.t(), b_out.defined() ? b_out[e] : torch::Tensor());
}

// Small expert GEMMs gain little from splitting each over the threads and pay a thread sync each:
// on CPU, with at least two experts per thread, experts up to kConcurrentExpertValues run
// concurrently instead, one thread each (largest first, taken from a shared counter), every GEMM
// single-threaded. The choice depends on shapes and routing only, never on packing, so packed
// and dense stacks of the same experts compute bitwise alike.
constexpr int64_t kConcurrentExpertValues = 8 << 20;

bool run_concurrently(const std::vector<int64_t>& counts, const ExpertMatrices& m, const torch::Tensor& x) {
  if (!x.is_cpu() || at::in_parallel_region()) return false;
  const int64_t workers = concurrent_expert_workers(m.rows * m.hidden + m.hidden * m.width);
  const int64_t active = std::count_if(counts.begin(), counts.end(), [](int64_t n) { return n > 0; });
  return workers > 1 && active >= 2 * workers;
}

// run(e) for every expert with rows: in order, or concurrently (run_concurrently) with the
// caller's thread-local state (grad mode, ...) in every worker. Each run(e) writes only its rows.
template <typename Run>
void for_each_expert(const std::vector<int64_t>& counts, bool concurrently, const Run& run) {
  const int64_t experts = static_cast<int64_t>(counts.size());
  if (!concurrently) {
    for (int64_t e = 0; e < experts; ++e)
      if (counts[e] > 0) run(e);
    return;
  }
  std::vector<int64_t> queue;
  for (int64_t e = 0; e < experts; ++e)
    if (counts[e] > 0) queue.push_back(e);
  std::stable_sort(queue.begin(), queue.end(), [&](int64_t a, int64_t b) { return counts[a] > counts[b]; });
  std::atomic<size_t> next{0};
  const at::ThreadLocalState caller;
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    at::ThreadLocalStateGuard same_state(caller);
    for (size_t i = next++; i < queue.size(); i = next++) run(queue[i]);
  });
}

// Row offset of each expert's rows in the sorted assignments.
std::vector<int64_t> starts_of(const std::vector<int64_t>& counts) {
  std::vector<int64_t> start(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), start.begin() + 1);
  return start;
}

// Forward over every expert's rows of the sorted assignments (d.token_of): y_sorted [TK, H]
// unweighted; pre_sorted [TK, R] is kept when defined (the backward reads it), else each
// expert's pre-activations live in a buffer of its own.
void forward_loop(const Dispatch& d, const torch::Tensor& x_TH, const ExpertMatrices& m, const torch::Tensor& b_in,
                  const torch::Tensor& b_out, const ActivationOptions& activation, torch::Tensor& pre_sorted,
                  torch::Tensor& y_sorted) {
  const std::vector<int64_t> start = starts_of(d.counts);
  for_each_expert(d.counts, run_concurrently(d.counts, m, x_TH), [&](int64_t e) {
    const int64_t n = d.counts[e], offset = start[e];
    auto x_rows = x_TH.index_select(0, d.token_of.narrow(0, offset, n));  // [n, H]
    auto pre_rows = pre_sorted.defined() ? pre_sorted.narrow(0, offset, n) : torch::empty({n, m.rows}, x_TH.options());
    expert_forward(e, x_rows, m, b_in, b_out, activation, pre_rows, y_sorted.narrow(0, offset, n));
  });
}

// out[t] = sum over t's assignments, in sorted order, of w * y (the order and arithmetic of
// index_add_ of the weighted rows, without materialising them), parallel over tokens. CPU.
torch::Tensor combine_rows(const torch::Tensor& y_sorted, const torch::Tensor& w_sorted, const torch::Tensor& order,
                           int64_t tokens, int64_t k) {
  const int64_t hidden = y_sorted.size(1);
  auto out = torch::zeros({tokens, hidden}, y_sorted.options());
  auto position = torch::empty_like(order).scatter_(0, order, torch::arange(order.size(0), order.options()));
  const int64_t* pos = position.data_ptr<int64_t>();  // assignment t*k+j -> its sorted row
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y_sorted.scalar_type(), "combine_rows", [&] {
    const scalar_t* y = y_sorted.data_ptr<scalar_t>();
    const scalar_t* w = w_sorted.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, tokens, 16, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> rows(k);
      for (int64_t t = begin; t < end; ++t) {
        std::copy(pos + t * k, pos + (t + 1) * k, rows.begin());
        std::sort(rows.begin(), rows.end());
        scalar_t* o_t = o + t * hidden;
        for (int64_t r : rows) {
          const scalar_t* y_r = y + r * hidden;
          const scalar_t w_r = w[r];
          for (int64_t h = 0; h < hidden; ++h) o_t[h] = o_t[h] + static_cast<scalar_t>(y_r[h] * w_r);
        }
      }
    });
  });
  return out;
}

ExpertGrads backward_loop(const std::vector<int64_t>& counts, const BackwardInputs& in) {
  ExpertGrads g;
  const ExpertMatrices& m = in.m;
  if (in.need_w_in) g.w_in = torch::zeros_like(m.w_in);
  if (in.need_w_out) g.w_out = torch::zeros_like(m.w_out);
  if (in.need_b_in) g.b_in = torch::zeros({m.experts, m.rows}, m.options);
  if (in.need_b_out) g.b_out = torch::zeros({m.experts, m.hidden}, m.options);
  if (in.need_x) g.x_sorted = torch::empty_like(in.x_sorted);
  const std::vector<int64_t> start = starts_of(counts);
  for_each_expert(counts, run_concurrently(counts, m, in.x_sorted), [&](int64_t e) {
    const int64_t n = counts[e], offset = start[e];
    const int64_t row = m.row_of(e);  // -1: packed, frozen (no weight gradient)
    auto x_rows = in.x_sorted.narrow(0, offset, n);         // [n, H]
    auto pre_rows = in.pre_sorted.narrow(0, offset, n);     // [n, R]
    auto grad_y_rows = in.grad_y_sorted.narrow(0, offset, n);  // [n, H]
    auto act_rows = activation_forward(pre_rows, in.activation);  // [n, F] recomputed, cheap
    if (in.need_w_out && row >= 0) {
      gemm_into(g.w_out[row], grad_y_rows.t(), act_rows);  // [H, F]
    }
    if (in.need_b_out) g.b_out[e].copy_(grad_y_rows.sum(0));
    auto grad_act = gemm(grad_y_rows, m.out(e));                               // [n, F]
    auto grad_pre = activation_backward(pre_rows, grad_act, in.activation);    // [n, R]
    if (in.need_w_in && row >= 0) {
      gemm_into(g.w_in[row], grad_pre.t(), x_rows);  // [R, H]
    }
    if (in.need_b_in) g.b_in[e].copy_(grad_pre.sum(0));
    if (in.need_x) {
      auto slot = g.x_sorted.narrow(0, offset, n);
      gemm_into(slot, grad_pre, m.in(e));  // [n, H]
    }
  });
  return g;
}

#if MOEFORGE_HAS_GROUPED_MM
// The same with torch's grouped GEMM: one call per projection over all experts' row segments.
void forward_grouped(const Dispatch& d, const torch::Tensor& x_sorted, const torch::Tensor& w_in, const torch::Tensor& b_in,
                     const torch::Tensor& w_out, const torch::Tensor& b_out, const ActivationOptions& activation,
                     torch::Tensor& pre_sorted, torch::Tensor& y_sorted) {
  pre_sorted = at::_grouped_mm(x_sorted, w_in.transpose(1, 2), d.offsets);  // [TK, R]
  add_expert_bias(pre_sorted, b_in, d);
  auto act = activation_forward(pre_sorted, activation);                   // [TK, F]
  y_sorted = at::_grouped_mm(act, w_out.transpose(1, 2), d.offsets);        // [TK, H]
  add_expert_bias(y_sorted, b_out, d);
}

ExpertGrads backward_grouped(const Dispatch& d, const BackwardInputs& in) {
  ExpertGrads g;
  const torch::Tensor& w_in = in.m.w_in;
  const torch::Tensor& w_out = in.m.w_out;
  const int64_t E = w_in.size(0);
  auto act = activation_forward(in.pre_sorted, in.activation);                              // [TK, F]
  if (in.need_w_out) g.w_out = at::_grouped_mm(in.grad_y_sorted.t(), act, d.offsets);       // [E, H, F]
  if (in.need_b_out)
    g.b_out = torch::zeros({E, w_out.size(1)}, w_out.options()).index_add_(0, d.expert_of, in.grad_y_sorted);
  auto grad_act = at::_grouped_mm(in.grad_y_sorted, w_out, d.offsets);                   // [TK, F]
  auto grad_pre = activation_backward(in.pre_sorted, grad_act, in.activation);              // [TK, R]
  if (in.need_w_in) g.w_in = at::_grouped_mm(grad_pre.t(), in.x_sorted, d.offsets);        // [E, R, H]
  if (in.need_b_in) g.b_in = torch::zeros({E, w_in.size(1)}, w_in.options()).index_add_(0, d.expert_of, grad_pre);
  if (in.need_x) g.x_sorted = at::_grouped_mm(grad_pre, w_in, d.offsets);               // [TK, H]
  return g;
}
#endif

// Auto mode on a device where the grouped GEMM turns out unsupported: say so once, use the loop.
[[maybe_unused]] void note_grouped_failure(const c10::Error& e) {
  if (g_grouped_failed.exchange(true)) return;
  std::string why = e.what_without_backtrace();
  why = why.substr(0, why.find('\n'));
  std::cerr << "moeforge: note: grouped GEMM unavailable here (" << why << "); using per-expert GEMMs\n";
}

// Packed experts travel through the autograd function as four u8 tensors (empty when dense).
PackedExperts packed_of(const torch::Tensor& in_blocks, const torch::Tensor& in_scales, const torch::Tensor& out_blocks,
                        const torch::Tensor& out_scales) {
  if (in_blocks.numel() == 0) return {};
  return PackedExperts{in_blocks, in_scales, out_blocks, out_scales};
}

// ... and their unpacked experts' ids as an int64 CPU tensor.
std::vector<int64_t> ids_of(const torch::Tensor& unpacked) {
  return std::vector<int64_t>(unpacked.data_ptr<int64_t>(), unpacked.data_ptr<int64_t>() + unpacked.numel());
}

// What the backward reads, by name. save_for_backward() takes a list; kOrder is the one place
// that fixes the position of each tensor in it.
struct SavedForBackward {
  torch::Tensor x_TH, weights_TK;                      // inputs [T, H], [T, K]
  torch::Tensor w_in, b_in, w_out, b_out;              // experts (biases undefined when absent)
  torch::Tensor pre_sorted, y_sorted;                  // [TK, R] pre-activation, [TK, H] unweighted out
  torch::Tensor order, token_of, expert_of, offsets;   // the Dispatch
  torch::Tensor in_blocks, in_scales, out_blocks, out_scales;  // packed MXFP4 experts (empty when dense)
  torch::Tensor unpacked;                              // [n] int64 on CPU: StackedExperts::unpacked
  using Member = torch::Tensor SavedForBackward::*;
  static constexpr Member kOrder[] = {&SavedForBackward::x_TH,       &SavedForBackward::weights_TK,
                                      &SavedForBackward::w_in,       &SavedForBackward::b_in,
                                      &SavedForBackward::w_out,      &SavedForBackward::b_out,
                                      &SavedForBackward::pre_sorted, &SavedForBackward::y_sorted,
                                      &SavedForBackward::order,      &SavedForBackward::token_of,
                                      &SavedForBackward::expert_of,  &SavedForBackward::offsets,
                                      &SavedForBackward::in_blocks,  &SavedForBackward::in_scales,
                                      &SavedForBackward::out_blocks, &SavedForBackward::out_scales,
                                      &SavedForBackward::unpacked};
  torch::autograd::variable_list list() const {
    torch::autograd::variable_list out;
    for (Member m : kOrder) out.push_back(this->*m);
    return out;
  }
  static SavedForBackward from(const torch::autograd::variable_list& list) {
    SavedForBackward saved;
    for (size_t i = 0; i < std::size(kOrder); ++i) saved.*kOrder[i] = list.at(i);
    return saved;
  }
};

class ExpertsFunction : public torch::autograd::Function<ExpertsFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x_TH,
                               torch::Tensor weights_TK, torch::Tensor w_in, torch::Tensor b_in,
                               torch::Tensor w_out, torch::Tensor b_out, torch::Tensor expert_ids_TK,
                               int64_t activation_kind, double limit, double alpha, torch::Tensor in_blocks,
                               torch::Tensor in_scales, torch::Tensor out_blocks, torch::Tensor out_scales,
                               torch::Tensor unpacked, bool differentiable) {
    ActivationOptions activation{static_cast<Activation>(activation_kind), limit, alpha};
    const ExpertMatrices m = matrices_of(w_in, w_out, packed_of(in_blocks, in_scales, out_blocks, out_scales),
                                         ids_of(unpacked), x_TH.scalar_type());
    const int64_t tokens = x_TH.size(0), hidden = x_TH.size(1), experts = m.experts;
    const int64_t rows = m.rows;
    bool grouped = !m.packed.defined() && use_grouped(x_TH, w_in, w_out);
    Dispatch d = make_dispatch(expert_ids_TK, experts, !grouped);
    if (b_in.numel() == 0) b_in = torch::Tensor();
    if (b_out.numel() == 0) b_out = torch::Tensor();
    torch::Tensor pre_sorted, y_sorted;  // [TK, R], [TK, H] unweighted
#if MOEFORGE_HAS_GROUPED_MM
    if (grouped) {
      try {
        forward_grouped(d, x_TH.index_select(0, d.token_of), w_in, b_in, w_out, b_out, activation, pre_sorted, y_sorted);
      } catch (const c10::Error& e) {
        if (static_cast<ExpertGemm>(g_expert_gemm.load()) == ExpertGemm::Grouped) throw;
        note_grouped_failure(e);
        grouped = false;
        d.counts = counts_of(d.offsets);
      }
    }
#endif
    if (!grouped) {
      const int64_t assignments = d.order.size(0);
      // The backward reads the pre-activations; forward-only work keeps them per expert only.
      if (differentiable) pre_sorted = torch::empty({assignments, rows}, x_TH.options());
      y_sorted = torch::empty({assignments, hidden}, x_TH.options());
      forward_loop(d, x_TH, m, b_in, b_out, activation, pre_sorted, y_sorted);
    }
    auto w_sorted = weights_TK.reshape({-1}).index_select(0, d.order).to(x_TH.scalar_type());  // [TK]
    torch::Tensor out_TH;
    if (x_TH.is_cpu()) {
      out_TH = combine_rows(y_sorted, w_sorted, d.order, tokens, expert_ids_TK.size(1));
    } else {
      out_TH = torch::zeros({tokens, hidden}, x_TH.options());
      out_TH.index_add_(0, d.token_of, y_sorted * w_sorted.unsqueeze(1));
    }
    ctx->saved_data["has_b_in"] = b_in.defined();
    ctx->saved_data["has_b_out"] = b_out.defined();
    SavedForBackward saved;
    saved.x_TH = x_TH;
    saved.weights_TK = weights_TK;
    saved.w_in = w_in;
    saved.b_in = b_in;
    saved.w_out = w_out;
    saved.b_out = b_out;
    saved.pre_sorted = pre_sorted;
    saved.y_sorted = y_sorted;
    saved.order = d.order;
    saved.token_of = d.token_of;
    saved.expert_of = d.expert_of;
    saved.offsets = d.offsets;
    saved.in_blocks = in_blocks;
    saved.in_scales = in_scales;
    saved.out_blocks = out_blocks;
    saved.out_scales = out_scales;
    saved.unpacked = unpacked;
    ctx->save_for_backward(saved.list());
    ctx->saved_data["counts"] = c10::IValue(d.counts);
    ctx->saved_data["grouped"] = grouped;
    ctx->saved_data["activation"] = activation_kind;
    ctx->saved_data["limit"] = limit;
    ctx->saved_data["alpha"] = alpha;
    return out_TH;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const SavedForBackward saved = SavedForBackward::from(ctx->get_saved_variables());
    const auto& x_TH = saved.x_TH;
    const auto& weights_TK = saved.weights_TK;
    const auto& w_in = saved.w_in;
    const auto b_in = ctx->saved_data["has_b_in"].toBool() ? saved.b_in : torch::Tensor();
    const auto& w_out = saved.w_out;
    const auto b_out = ctx->saved_data["has_b_out"].toBool() ? saved.b_out : torch::Tensor();
    const auto& pre_sorted = saved.pre_sorted;
    const auto& y_sorted = saved.y_sorted;
    Dispatch d;
    d.order = saved.order;
    d.token_of = saved.token_of;
    d.expert_of = saved.expert_of;
    d.offsets = saved.offsets;
    d.counts = ctx->saved_data["counts"].toIntVector();
    [[maybe_unused]] const bool grouped = ctx->saved_data["grouped"].toBool();
    ActivationOptions activation{static_cast<Activation>(ctx->saved_data["activation"].toInt()),
                                 ctx->saved_data["limit"].toDouble(), ctx->saved_data["alpha"].toDouble()};
    const bool need_x = ctx->needs_input_grad(0), need_weights = ctx->needs_input_grad(1);

    auto grad_out_TH = grads[0].contiguous();
    auto grad_y_sorted = grad_out_TH.index_select(0, d.token_of);  // [TK, H] gradient of weighted y
    torch::Tensor grad_weights_TK;
    if (need_weights) {
      auto grad_w_sorted = (grad_y_sorted.to(weights_TK.scalar_type()) * y_sorted.to(weights_TK.scalar_type())).sum(-1);  // [TK]
      grad_weights_TK = torch::zeros({d.order.size(0)}, grad_w_sorted.options())
                            .index_copy_(0, d.order, grad_w_sorted)
                            .view(weights_TK.sizes())
                            .to(weights_TK.scalar_type());
    }
    auto w_sorted = weights_TK.reshape({-1}).index_select(0, d.order).to(x_TH.scalar_type());
    grad_y_sorted.mul_(w_sorted.unsqueeze(1));  // now the gradient of unweighted y
    auto x_sorted = x_TH.index_select(0, d.token_of);
    const ExpertMatrices m = matrices_of(w_in, w_out, packed_of(saved.in_blocks, saved.in_scales, saved.out_blocks, saved.out_scales),
                                         ids_of(saved.unpacked), x_TH.scalar_type());
    BackwardInputs in{x_sorted, pre_sorted, grad_y_sorted, m,
                      need_x, ctx->needs_input_grad(2), b_in.defined() && ctx->needs_input_grad(3),
                      ctx->needs_input_grad(4), b_out.defined() && ctx->needs_input_grad(5), activation};
    ExpertGrads g;
    bool done = false;
#if MOEFORGE_HAS_GROUPED_MM
    if (grouped) {
      try {
        g = backward_grouped(d, in);
        done = true;
      } catch (const c10::Error& e) {  // a device that ran the forward's shapes but not these
        if (static_cast<ExpertGemm>(g_expert_gemm.load()) == ExpertGemm::Grouped) throw;
        note_grouped_failure(e);
        d.counts = counts_of(d.offsets);
      }
    }
#endif
    if (!done) g = backward_loop(d.counts, in);
    torch::Tensor grad_x_TH;
    if (need_x) grad_x_TH = torch::zeros_like(x_TH).index_add_(0, d.token_of, g.x_sorted);
    return {grad_x_TH, grad_weights_TK, g.w_in, g.b_in, g.w_out, g.b_out,
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_shapes(const torch::Tensor& x_TH, const torch::Tensor& ids, const torch::Tensor& weights,
                  const StackedExperts& experts, const ActivationOptions& activation) {
  if (x_TH.dim() != 2) fail("MoE input must be [tokens, hidden]");
  if (ids.sizes() != weights.sizes() || ids.dim() != 2 || ids.size(0) != x_TH.size(0))
    fail("MoE routing must be [tokens, k] for both ids and weights");
  const bool packed = experts.packed.defined();
  if (packed && (experts.w_in.defined() ? experts.w_in.size(0) : 0) != static_cast<int64_t>(experts.unpacked.size()))
    fail("internal: a packed expert stack holds ", experts.w_in.defined() ? experts.w_in.size(0) : 0, " dense experts but lists ",
         experts.unpacked.size());
  const int64_t rows = packed ? experts.packed.rows() : experts.w_in.size(1);
  const int64_t width = packed ? experts.packed.width() : experts.w_out.size(2);
  const int64_t in_hidden = packed ? experts.packed.in_blocks.size(2) * 32 : experts.w_in.size(2);
  const int64_t out_hidden = packed ? experts.packed.hidden() : experts.w_out.size(1);
  if (in_hidden != x_TH.size(1) || out_hidden != x_TH.size(1))
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
  const PackedExperts& p = experts.packed;
  auto none = [&] { return torch::empty({0}, x_TH.options().dtype(torch::kUInt8)); };
  auto unpacked = torch::tensor(experts.unpacked, torch::TensorOptions().dtype(torch::kInt64));
  bool differentiable = false;  // a backward can follow: the forward keeps what it reads
  if (torch::GradMode::is_enabled())
    for (const torch::Tensor* t : {&x_TH, &weights_TK, &experts.w_in, &experts.b_in, &experts.w_out, &experts.b_out})
      differentiable = differentiable || (t->defined() && t->requires_grad());
  return ExpertsFunction::apply(x_TH.contiguous(), weights_TK, or_empty(experts.w_in), or_empty(experts.b_in),
                                or_empty(experts.w_out), or_empty(experts.b_out), expert_ids_TK,
                                static_cast<int64_t>(activation.kind), activation.limit, activation.alpha,
                                p.defined() ? p.in_blocks : none(), p.defined() ? p.in_scales : none(),
                                p.defined() ? p.out_blocks : none(), p.defined() ? p.out_scales : none(), unpacked,
                                differentiable);
}

int64_t StackedExperts::row_of(int64_t expert) const {
  if (!packed.defined()) return expert;
  auto it = std::lower_bound(unpacked.begin(), unpacked.end(), expert);
  return it != unpacked.end() && *it == expert ? it - unpacked.begin() : -1;
}

int64_t concurrent_expert_workers(int64_t values_per_expert) {
  return values_per_expert <= kConcurrentExpertValues ? std::max(1, at::get_num_threads()) : 1;
}

void set_expert_gemm(ExpertGemm gemm) { g_expert_gemm.store(static_cast<int>(gemm)); }
ExpertGemm expert_gemm() { return static_cast<ExpertGemm>(g_expert_gemm.load()); }
bool grouped_gemm_available() { return MOEFORGE_HAS_GROUPED_MM; }

torch::Tensor run_experts_dense_reference(const torch::Tensor& x_TH, const torch::Tensor& expert_ids_TK,
                                          const torch::Tensor& weights_TK, const StackedExperts& experts,
                                          const ActivationOptions& activation) {
  check_shapes(x_TH, expert_ids_TK, weights_TK, experts, activation);
  auto out = torch::zeros_like(x_TH);
  const ExpertMatrices m = matrices_of(experts.w_in, experts.w_out, experts.packed, experts.unpacked, x_TH.scalar_type());
  for (int64_t e = 0; e < experts.num_experts(); ++e) {
    auto pre = torch::matmul(x_TH, m.in(e).to(x_TH.scalar_type()).t());
    if (experts.b_in.defined()) pre = pre + experts.b_in[e];
    auto y = torch::matmul(activation_forward(pre, activation), m.out(e).to(x_TH.scalar_type()).t());
    if (experts.b_out.defined()) y = y + experts.b_out[e];
    auto gate = (weights_TK * (expert_ids_TK == e).to(weights_TK.scalar_type())).sum(-1, true);  // [T, 1]
    out = out + gate.to(x_TH.scalar_type()) * y;
  }
  return out;
}

}  // namespace moeforge::model
