// Chunked lm_head + CE + token KD, and router KD (formulas in distill.h).
#include "train/distill.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "model/linear.h"
#include "train/distill_kernel.h"

namespace moeforge::train {

namespace F = torch::nn::functional;

namespace {

// KL(A || B) per row from log-probabilities; 0 * log 0 counts as 0.
torch::Tensor kl_rows(const torch::Tensor& logp_a, const torch::Tensor& logp_b) {
  auto p = logp_a.exp();
  return torch::where(p > 0, p * (logp_a - logp_b), torch::zeros_like(p)).sum(1);
}

// fp32 for the softmaxes, keeping fp64 (tests) as it is.
torch::Tensor at_least_fp32(const torch::Tensor& t) { return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat32); }

// Tokens per chunk: `requested`, or (0) as many as keep one [chunk, vocab] fp32 buffer near 128 MB.
int64_t chunk_size(int64_t requested, int64_t vocab) {
  if (requested > 0) return requested;
  return std::max<int64_t>(16, (int64_t{1} << 25) / std::max<int64_t>(vocab, 1));
}

}  // namespace

torch::Tensor divergence(const torch::Tensor& teacher_logp, const torch::Tensor& student_logp, KdDivergence kind, double beta) {
  if (kind == KdDivergence::ForwardKl || (kind == KdDivergence::Jsd && beta == 0.0)) return kl_rows(teacher_logp, student_logp);
  if (kind == KdDivergence::ReverseKl || (kind == KdDivergence::Jsd && beta == 1.0)) return kl_rows(student_logp, teacher_logp);
  // log M = logsumexp(log P + log beta, log Q + log(1 - beta)), as TRL.
  auto mix = torch::logsumexp(torch::stack({teacher_logp + std::log(beta), student_logp + std::log1p(-beta)}), 0);
  return beta * kl_rows(teacher_logp, mix) + (1.0 - beta) * kl_rows(student_logp, mix);
}

torch::Tensor bucketed_logp(const torch::Tensor& logp_NV, const torch::Tensor& ids_NK) {
  auto top = logp_NV.gather(1, ids_NK);                                                       // [N, K]
  auto rest = logp_NV.scatter(1, ids_NK, -std::numeric_limits<float>::infinity());            // the other ids
  auto tail = torch::logsumexp(rest, 1, /*keepdim=*/true).clamp_min(std::log(1e-20));         // [N, 1]
  return torch::cat({top, tail}, 1);
}

namespace {

// The teacher's side of one chunk (no grad): online logits [m, cols], or cached top-K ids, log-probs, tail.
struct TeacherChunk {
  torch::Tensor logits, ids, logp, tail;
};

// Forward KL + CE of one chunk with the gradient with respect to the logits in closed form, so a
// chunk costs a few passes over [m, V] instead of autograd through softmaxes, gathers and scatters.
// With s = z / T, q = softmax(s) and the teacher's buckets P (its K ids + a tail, or all ids):
//   d KL(P || Q) / d s_j = q_j - P_j for j among the K ids, q_j (1 - P_tail / Q_tail) for the others
// (Q_tail = the student's mass outside the K ids; with all ids, q_j - p_j), and d/dz = that / T;
// d CE / d z = softmax(z) - onehot(target). Returns d(loss)/dz with w and scale applied.
torch::Tensor forward_kl_chunk(const torch::Tensor& z, const torch::Tensor& target, const torch::Tensor& w, const TeacherChunk* t,
                               int64_t cols, const HeadLossOptions& o, HeadLossStats& stats) {
  const double Tk = o.temperature;
  const int64_t V = z.size(1);
  auto lse1 = torch::logsumexp(z, 1, true);                                   // [m, 1]
  auto ce_rows = (lse1 - z.gather(1, target.unsqueeze(1))).squeeze(1);
  stats.ce_sum += (ce_rows * w).sum().item<double>();
  auto G = torch::exp(z - lse1);                                              // softmax(z)
  G.mul_(o.ce_coef);
  G.scatter_add_(1, target.unsqueeze(1), torch::full({z.size(0), 1}, -o.ce_coef, z.options()));
  if (t != nullptr) {
    auto zc = z.narrow(1, 0, cols);
    const bool same = Tk == 1.0 && cols == V;
    auto lseT = same ? lse1 : torch::logsumexp(zc / Tk, 1, true);
    auto q = torch::exp(zc / Tk - lseT);                                      // softmax(zc / T)
    torch::Tensor g, kd_rows, ids, Pb;
    if (t->logits.defined() && !(o.top_k > 0 && o.top_k < cols)) {             // all ids
      auto logp = torch::log_softmax(t->logits / Tk, 1);
      g = q - logp.exp();
      kd_rows = kl_rows(logp, zc / Tk - lseT);
    } else {                                                                  // the teacher's K ids + a tail
      if (t->logits.defined()) {
        ids = std::get<1>(t->logits.topk(o.top_k, 1));
        Pb = bucketed_logp(torch::log_softmax(t->logits / Tk, 1), ids);
      } else {
        ids = t->ids;  // the cache's log-probs are at T = 1: tempered, the tail as one bucket, renormalised
        Pb = torch::log_softmax(torch::cat({t->logp, t->tail}, 1) / Tk, 1);
      }
      const int64_t K = ids.size(1);
      auto qK = q.gather(1, ids);
      g = q.scatter(1, ids, 0.0);
      auto q_tail = g.sum(1, true).clamp_min(1e-20);
      auto P = Pb.exp();
      auto p_tail = P.narrow(1, K, 1);
      g.mul_(1.0 - p_tail / q_tail);
      g.scatter_(1, ids, qK - P.narrow(1, 0, K));
      auto logQ = torch::cat({zc.gather(1, ids) / Tk - lseT, q_tail.log()}, 1);
      kd_rows = kl_rows(Pb, logQ);
    }
    stats.kd_sum += (kd_rows * w).sum().item<double>() * Tk * Tk;
    if (o.kd_coef > 0) G.narrow(1, 0, cols).add_(g, o.kd_coef * Tk);
    // Metrics at T = 1: the exact KL online, the bucketed one offline; argmax agreement.
    torch::Tensor kl1, t_arg;
    if (t->logits.defined()) {
      kl1 = (same && !ids.defined()) ? kd_rows : kl_rows(torch::log_softmax(t->logits, 1), torch::log_softmax(zc, 1));
      t_arg = t->logits.argmax(1);
    } else {
      auto P1 = torch::log_softmax(torch::cat({t->logp, t->tail}, 1), 1);
      kl1 = same ? kd_rows : kl_rows(P1, bucketed_logp(torch::log_softmax(zc, 1), ids));
      t_arg = ids.gather(1, t->logp.argmax(1, true)).squeeze(1);
    }
    stats.kl_sum += (kl1 * w).sum().item<double>();
    stats.agree += (zc.argmax(1) == t_arg).sum().item<int64_t>();
  }
  G.mul_(w.unsqueeze(1) * o.scale);
  return G;
}

// The teacher's side of rows [r0, r0 + m) of the target rows `src` (no grad, fp32 on `dev`).
TeacherChunk teacher_chunk(const TeacherTokens& t, const torch::Tensor& src, int64_t r0, int64_t m, torch::Device dev, int64_t& cols) {
  TeacherChunk tc;
  if (t.online()) {
    auto rows_t = src.narrow(0, r0, m).to(t.hidden_NH.device());
    tc.logits = at_least_fp32(torch::linear(t.hidden_NH.index_select(0, rows_t), t.lm_head_VH)).to(dev);
    cols = std::min<int64_t>(cols, tc.logits.size(1));
    tc.logits = tc.logits.narrow(1, 0, cols).contiguous();
  } else {
    auto rows_t = src.narrow(0, r0, m).to(t.top_ids_NK.device());
    tc.ids = t.top_ids_NK.index_select(0, rows_t).to(dev, torch::kInt64).contiguous();
    tc.logp = at_least_fp32(t.top_logp_NK.index_select(0, rows_t)).to(dev).contiguous();
    tc.tail = at_least_fp32(t.tail_logp_N.index_select(0, rows_t)).to(dev).unsqueeze(1).contiguous();
  }
  return tc;
}

// Forward KL (+ CE) with the head's gradients formed by hand: per chunk the logits go into one
// reused buffer, their gradient is written over them (the fused CPU kernel, or torch ops), and the
// two GEMMs of the head's backward follow; d lm_head is accumulated in fp32 over the chunks and
// sent through lm_head's own graph (a LoRA delta, a cast of a master) once.
void closed_form_head(const torch::Tensor& leaf, const torch::Tensor& lm_head_VH, const torch::Tensor& src, const torch::Tensor& targets,
                      const torch::Tensor& weights, const TeacherTokens* teacher, const HeadLossOptions& o, int64_t chunk,
                      HeadLossResult& out) {
  torch::NoGradGuard no_grad;
  const int64_t n = leaf.size(0), V = lm_head_VH.size(0);
  const auto dtype = leaf.scalar_type();
  const auto dev = leaf.device();
  auto W = lm_head_VH.detach();
  const bool need_dx = leaf.requires_grad(), need_dw = lm_head_VH.requires_grad();
  auto x = leaf.detach();
  torch::Tensor dx = need_dx ? torch::empty_like(x) : torch::Tensor();
  torch::Tensor dW = need_dw ? torch::zeros({V, W.size(1)}, W.options().dtype(dtype == torch::kDouble ? torch::kDouble : torch::kFloat32))
                             : torch::Tensor();
  const bool fused = dev.is_cpu() && dtype != torch::kDouble;
  const auto acc = dtype == torch::kDouble ? torch::kDouble : torch::kFloat32;
  auto buffer = torch::empty({std::min(chunk, n), V}, x.options().dtype(acc));
  const torch::Tensor W_dx = need_dx ? model::fast_right_operand(W) : torch::Tensor();  // d x = G W on its fast layout
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t m = std::min(chunk, n - r0);
    auto xc = x.narrow(0, r0, m);
    auto z = buffer.narrow(0, 0, m);
    if (dtype == acc)
      torch::mm_out(z, xc, W.t());
    else
      z.copy_(torch::mm(xc, W.t()));
    int64_t cols = o.kd_vocab > 0 ? std::min(V, o.kd_vocab) : V;  // the tokenizer's ids: padded rows left out
    TeacherChunk tc;
    if (teacher != nullptr) tc = teacher_chunk(*teacher, src, r0, m, dev, cols);
    auto tgt = targets.narrow(0, r0, m).contiguous();
    auto w = weights.narrow(0, r0, m).contiguous();
    const bool top_k_online = teacher != nullptr && teacher->online() && o.top_k > 0 && o.top_k < cols;
    torch::Tensor G;
    const bool fp32_teacher = teacher == nullptr || (teacher->online() ? tc.logits.scalar_type() == torch::kFloat32
                                                                         : tc.logp.scalar_type() == torch::kFloat32 && tc.tail.scalar_type() == torch::kFloat32);
    if (fused && !top_k_online && fp32_teacher) {
      FusedTeacher ft;
      if (teacher != nullptr && teacher->online()) {
        ft.kind = FusedTeacher::Kind::Full;
        ft.logits = tc.logits.data_ptr<float>();
      } else if (teacher != nullptr) {
        ft.kind = FusedTeacher::Kind::Buckets;
        ft.ids = tc.ids.data_ptr<int64_t>();
        ft.logp = tc.logp.data_ptr<float>();
        ft.tail = tc.tail.data_ptr<float>();
        ft.K = tc.ids.size(1);
      }
      const FusedSums s = fused_forward_kl_chunk(z.data_ptr<float>(), m, V, cols, tgt.data_ptr<int64_t>(), w.data_ptr<float>(), ft,
                                                 o.temperature, o.ce_coef, o.kd_coef, o.scale);
      out.stats.ce_sum += s.ce;
      out.stats.kd_sum += s.kd;
      out.stats.kl_sum += s.kl1;
      out.stats.agree += s.agree;
      G = z;
    } else {
      G = forward_kl_chunk(z, tgt, w, teacher != nullptr ? &tc : nullptr, cols, o, out.stats);
    }
    if (G.scalar_type() != dtype) G = G.to(dtype);
    if (need_dx) {
      auto dxc = dx.narrow(0, r0, m);
      torch::mm_out(dxc, G, W_dx);
    }
    if (need_dw) {
      if (dtype == dW.scalar_type())
        dW.addmm_(G.t(), xc);
      else
        dW.add_(torch::mm(G.t(), xc));
    }
  }
  out.stats.targets = n;
  if (need_dw) {
    torch::AutoGradMode enable(true);
    // lm_head's graph is shared with the rest of the forward (tied embeddings, a master's cast): keep it.
    torch::autograd::backward({lm_head_VH}, {dW.to(W.scalar_type())}, /*retain_graph=*/true);
  }
  if (need_dx) out.rows_grad = dx;
}

}  // namespace

HeadLossResult chunked_head_loss(const torch::Tensor& hidden_BTH, const torch::Tensor& lm_head_VH, const torch::Tensor& ids_BT,
                                 const torch::Tensor& mask_BT, const TeacherTokens* teacher, const HeadLossOptions& o) {
  HeadLossResult out;
  const int64_t B = hidden_BTH.size(0), T = hidden_BTH.size(1), H = hidden_BTH.size(2), V = lm_head_VH.size(0);
  if (T < 2) return out;
  const auto dev = hidden_BTH.device();
  auto weight_N = mask_BT.narrow(1, 1, T - 1).reshape({-1}).to(dev, torch::kFloat32);  // [B*(T-1)]
  auto sel = torch::nonzero(weight_N > 0).reshape({-1});                               // target rows
  const int64_t n = sel.size(0);
  if (n == 0) return out;
  auto src = torch::div(sel, T - 1, "floor") * T + torch::remainder(sel, T - 1);      // their rows in [B*T]
  auto targets = ids_BT.to(dev).narrow(1, 1, T - 1).reshape({-1}).index_select(0, sel);
  auto weights = weight_N.index_select(0, sel);
  auto rows = hidden_BTH.reshape({B * T, H}).index_select(0, src);  // attached to the student's graph
  auto leaf = rows.detach().requires_grad_(rows.requires_grad());
  const bool kd = teacher != nullptr;  // with kd_coef 0 the teacher still gives the metrics (kl, agreement)
  const double Tk = o.temperature;
  const int64_t chunk = chunk_size(o.chunk_tokens, V);
  const bool closed_form = o.divergence == KdDivergence::ForwardKl || (o.divergence == KdDivergence::Jsd && o.beta == 0.0);
  if (closed_form) {
    closed_form_head(leaf, lm_head_VH, src, targets, weights, kd ? teacher : nullptr, o, chunk, out);
    if (rows.requires_grad()) out.rows = rows;
    return out;
  }
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t m = std::min(chunk, n - r0);
    auto w = weights.narrow(0, r0, m);
    auto logits = at_least_fp32(model::linear(leaf.narrow(0, r0, m), lm_head_VH, torch::Tensor()));  // [m, V]
    auto ce = (F::cross_entropy(logits, targets.narrow(0, r0, m), F::CrossEntropyFuncOptions().reduction(torch::kNone)) * w).sum();
    auto loss = o.ce_coef * ce;
    torch::Tensor kd_sum;
    if (kd) {
      int64_t cols = o.kd_vocab > 0 ? std::min(V, o.kd_vocab) : V;  // the tokenizer's ids: padded rows left out
      TeacherChunk tc;  // teacher side, no grad
      {
        torch::NoGradGuard no_grad;
        tc = teacher_chunk(*teacher, src, r0, m, dev, cols);
      }
      const torch::Tensor &t_logits = tc.logits, &t_logp = tc.logp, &t_tail = tc.tail;
      torch::Tensor t_ids = tc.ids;
      auto s_logits = logits.narrow(1, 0, cols);
      auto logq = torch::log_softmax(s_logits / Tk, 1);
      torch::Tensor P, Q;
      if (teacher->online()) {
        torch::NoGradGuard no_grad;
        auto logp = torch::log_softmax(t_logits / Tk, 1);
        if (o.top_k > 0 && o.top_k < cols) {
          t_ids = std::get<1>(t_logits.topk(o.top_k, 1));
          P = bucketed_logp(logp, t_ids);
        } else {
          P = logp;
        }
      } else {
        // The cache's log-probabilities are at T = 1; at T the K ids and the tail (as one bucket) are tempered and renormalised.
        P = torch::log_softmax(torch::cat({t_logp, t_tail}, 1) / Tk, 1);
      }
      Q = t_ids.defined() ? bucketed_logp(logq, t_ids) : logq;
      kd_sum = (divergence(P, Q, o.divergence, o.beta) * w).sum() * (Tk * Tk);
      if (o.kd_coef > 0) loss = loss + o.kd_coef * kd_sum;
      // Metrics at T = 1: the exact KL online, the bucketed one offline; argmax agreement.
      torch::NoGradGuard no_grad;
      auto logq1 = torch::log_softmax(s_logits, 1);
      torch::Tensor kl1, t_arg;
      if (teacher->online()) {
        kl1 = kl_rows(torch::log_softmax(t_logits, 1), logq1);
        t_arg = t_logits.argmax(1);
      } else {
        auto P1 = torch::log_softmax(torch::cat({t_logp, t_tail}, 1), 1);
        kl1 = kl_rows(P1, bucketed_logp(logq1, t_ids));
        t_arg = t_ids.gather(1, t_logp.argmax(1, true)).squeeze(1);
      }
      out.stats.kl_sum += (kl1 * w).sum().item<double>();
      out.stats.agree += (s_logits.argmax(1) == t_arg).sum().item<int64_t>();
      out.stats.kd_sum += kd_sum.item<double>();
    }
    out.stats.ce_sum += ce.item<double>();
    loss = loss * o.scale;
    // The head's graph (a LoRA delta, a bf16 cast of a master) is shared by every chunk: keep it.
    if (loss.requires_grad()) loss.backward({}, /*retain_graph=*/true);
  }
  out.stats.targets = n;
  if (rows.requires_grad()) {
    out.rows = rows;
    out.rows_grad = leaf.grad().defined() ? leaf.grad() : torch::zeros_like(leaf);
  }
  return out;
}

void fold_teacher_top_k(TeacherTokens& t, int64_t k) {
  auto top = t.top_logp_NK.topk(k, 1);  // sorted: the most likely first
  auto rest = t.top_logp_NK.scatter(1, std::get<1>(top), -std::numeric_limits<float>::infinity());
  t.tail_logp_N = torch::logsumexp(torch::cat({rest, t.tail_logp_N.unsqueeze(1)}, 1), 1);
  t.top_ids_NK = t.top_ids_NK.gather(1, std::get<1>(top));
  t.top_logp_NK = std::get<0>(top);
}

torch::Tensor router_kd_cached(const std::vector<model::LayerRouting>& student, const TeacherTokens& cache, const torch::Tensor& real_N,
                               double temperature, std::vector<double>* per_layer) {
  if (student.size() != cache.router_ids_NR.size())
    fail("router KD: the student has ", student.size(), " MoE layers, the teacher cache ", cache.router_ids_NR.size());
  auto real = real_N.to(torch::kFloat32);
  const double n_real = std::max(1.0, real.sum().item<double>());
  torch::Tensor total;
  for (size_t i = 0; i < student.size(); ++i) {
    const auto dev = student[i].logits.device();
    auto ids = cache.router_ids_NR[i].to(dev);
    // The teacher's top-R logits and the rest as one bucket, tempered together (exact when R = E).
    auto P = torch::log_softmax(torch::cat({cache.router_logits_NR[i].to(dev), cache.router_tail_N[i].to(dev).unsqueeze(1)}, 1) /
                                    temperature, 1);
    auto Q = bucketed_logp(torch::log_softmax(student[i].logits.to(torch::kFloat32) / temperature, 1), ids);
    auto layer = (kl_rows(P, Q) * real.to(dev)).sum() / n_real;
    if (per_layer) per_layer->push_back(layer.item<double>() * temperature * temperature);
    total = total.defined() ? total + layer : layer;
  }
  return total * (temperature * temperature / static_cast<double>(student.size()));
}

torch::Tensor router_kd(const std::vector<model::LayerRouting>& student, const std::vector<model::LayerRouting>& teacher,
                        const torch::Tensor& real_N, double temperature, std::vector<double>* per_layer) {
  if (student.empty()) return torch::zeros({}, torch::kFloat32);
  if (student.size() != teacher.size())
    fail("router KD: the student has ", student.size(), " MoE layers, the teacher ", teacher.size());
  auto real = real_N.to(torch::kFloat32);
  const double n_real = std::max(1.0, real.sum().item<double>());
  torch::Tensor total;
  for (size_t i = 0; i < student.size(); ++i) {
    auto s = torch::log_softmax(student[i].logits.to(torch::kFloat32) / temperature, 1);
    torch::Tensor t;
    {
      torch::NoGradGuard no_grad;
      t = torch::log_softmax(teacher[i].logits.to(s.device(), torch::kFloat32) / temperature, 1);
    }
    auto layer = (kl_rows(t, s) * real.to(s.device())).sum() / n_real;
    if (per_layer) per_layer->push_back(layer.item<double>() * temperature * temperature);
    total = total.defined() ? total + layer : layer;
  }
  return total * (temperature * temperature / static_cast<double>(student.size()));
}

}  // namespace moeforge::train
