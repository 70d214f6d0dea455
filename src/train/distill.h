// Knowledge-distillation losses (REFERENCE.md sections 4-5): the language-model head applied in chunks
// of tokens with cross-entropy and token KD (forward KL, reverse KL or TRL's generalised JSD at
// temperature T, times T^2; on the teacher's full distribution or its top-K plus one tail bucket), so
// no [tokens, vocab] buffer exists beyond one chunk; and NEXUS's per-layer router-logit KL.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "model/transformer.h"
#include "train/recipe.h"

namespace moeforge::train {

// The teacher's side of one micro-batch, row-aligned with the student's flattened [B*T] tokens.
struct TeacherTokens {
  // Online: the teacher's final-normed hidden states [B*T, Ht] and its lm_head [Vt, Ht]; logits are
  // formed per chunk under no-grad, in the teacher's dtype, then fp32.
  torch::Tensor hidden_NH, lm_head_VH;
  // Offline (a teacher cache): top-K ids [B*T, K] int64, their log-probabilities at T = 1 [B*T, K]
  // float32, and the remaining mass log(1 - sum p_K) [B*T] float32.
  torch::Tensor top_ids_NK, top_logp_NK, tail_logp_N;
  // Offline router targets, per MoE layer: top-R expert ids [B*T, R] int64, their raw logits [B*T, R]
  // and the logsumexp of the other logits [B*T] (float32).
  std::vector<torch::Tensor> router_ids_NR, router_logits_NR, router_tail_N;
  bool online() const { return hidden_NH.defined(); }
};

struct HeadLossOptions {
  double ce_coef = 1.0;  // loss = scale * (ce_coef * sum CE + kd_coef * sum KD)
  double kd_coef = 0.0;  // 0 = no token KD in the loss (a teacher, when given, still gives the metrics)
  double scale = 1.0;    // 1 / targets of the optimiser step
  KdDivergence divergence = KdDivergence::ForwardKl;
  double beta = 0.5;
  double temperature = 1.0;
  int64_t top_k = 0;       // online: 0 = the full distribution; K = top K + tail. Ignored offline (the cache's K).
  int64_t kd_vocab = 0;    // columns compared (min of the two vocabularies: a padded tail is left out); 0 = all
  int64_t chunk_tokens = 1024;
};

struct HeadLossStats {
  double ce_sum = 0;      // sum over targets of -log p_student(target)
  double kd_sum = 0;      // sum over targets of the divergence at T, times T^2
  double kl_sum = 0;      // sum over targets of KL(teacher || student) at T = 1 (top-K + tail offline)
  int64_t agree = 0;      // targets where the student's argmax is the teacher's
  int64_t targets = 0;
};

// Cross-entropy (+ KD) of the next-token predictions of `hidden_BTH` (final-normed, attached to the
// student's graph) through `lm_head_VH` (the student's effective head, attached where trained) under
// the target mask (REFERENCE: position t predicts ids[t+1], weighted by mask[t+1]). Runs the backward
// itself, chunk by chunk: gradients reach lm_head's leaves directly, and the returned tensor pair
// (hidden rows used, their gradient) is what the caller passes to torch::autograd::backward together
// with its other losses. The forward value is reported in the stats only.
struct HeadLossResult {
  HeadLossStats stats;
  torch::Tensor rows, rows_grad;  // undefined when hidden_BTH does not require grad
};
HeadLossResult chunked_head_loss(const torch::Tensor& hidden_BTH, const torch::Tensor& lm_head_VH, const torch::Tensor& ids_BT,
                                 const torch::Tensor& mask_BT, const TeacherTokens* teacher, const HeadLossOptions& options);

// Per-token divergence between teacher and student log-probabilities over the same buckets
// ([N, C] each, rows summing to 1 in probability): forward KL = KL(P||Q), reverse = KL(Q||P), JSD as
// TRL's generalized_jsd_loss (M = beta P + (1 - beta) Q; beta * KL(P||M) + (1 - beta) * KL(Q||M);
// beta 0 = forward KL, 1 = reverse KL). Returns [N].
torch::Tensor divergence(const torch::Tensor& teacher_logp_NC, const torch::Tensor& student_logp_NC, KdDivergence kind, double beta);

// Student log-probabilities regrouped as the teacher's top-K buckets plus a tail: [N, K + 1]
// (the last column is log of the student's mass outside the K ids).
torch::Tensor bucketed_logp(const torch::Tensor& logp_NV, const torch::Tensor& ids_NK);

// A cache's top-K narrowed to its k most likely ids (k < K), the others joining the tail bucket:
// the buckets an online teacher's top-k would give, to the cache's precision.
void fold_teacher_top_k(TeacherTokens& teacher, int64_t k);

// NEXUS's router KD: mean over MoE layers of the mean over real tokens of
// KL(softmax(teacher / T) || softmax(student / T)) * T^2. Layers pair up in order; the caller checks
// that both models route over the same experts.
// `per_layer` (when given) receives each layer's term (T^2 KL, before the mean over layers).
torch::Tensor router_kd(const std::vector<model::LayerRouting>& student, const std::vector<model::LayerRouting>& teacher,
                        const torch::Tensor& real_N, double temperature, std::vector<double>* per_layer = nullptr);

// The same against a teacher cache's top-R router logits (+ the rest as one bucket, exact at R = E).
torch::Tensor router_kd_cached(const std::vector<model::LayerRouting>& student, const TeacherTokens& cache, const torch::Tensor& real_N,
                               double temperature, std::vector<double>* per_layer = nullptr);

}  // namespace moeforge::train
