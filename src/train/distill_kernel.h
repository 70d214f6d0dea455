// A fused CPU kernel for one chunk of the language-model head's CE + forward-KL distillation loss
// (the closed form of distill.cpp's forward_kl_chunk): per row, two or three passes over the
// student's fp32 logits, the gradient written over them in place. Torch ops for the same need ~15
// passes over a [tokens, vocab] chunk, which at a 200k vocabulary cost more than the head's GEMM.
// Torch-free; distill.cpp checks it against the torch-op version (tests: DistillKernel).
#pragma once

#include <cstdint>

namespace moeforge::train {

struct FusedTeacher {
  enum class Kind { None, Full, Buckets } kind = Kind::None;
  const float* logits = nullptr;  // Full: [m, cols] fp32, row-major
  const int64_t* ids = nullptr;   // Buckets: the K ids [m, K] (distinct, < cols), their log-probs at T = 1
  const float* logp = nullptr;    // [m, K] and the tail log(1 - sum p_K) [m]
  const float* tail = nullptr;
  int64_t K = 0;
};

struct FusedSums {
  double ce = 0, kd = 0, kl1 = 0;  // sums over rows of w * (CE, divergence at T times T^2, KL at T = 1)
  int64_t agree = 0;               // rows whose student argmax (over cols) is the teacher's
};

// z [m, V] (fp32 student logits, row-major) is overwritten with d(loss)/dz, where
// loss = scale * sum_rows w * (ce_coef * CE + kd_coef * T^2 * KL(P_T || Q_T)) (distill.h).
// Columns >= cols take part in the CE only (a padded vocabulary tail).
FusedSums fused_forward_kl_chunk(float* z, int64_t m, int64_t V, int64_t cols, const int64_t* target, const float* w,
                                 const FusedTeacher& teacher, double temperature, double ce_coef, double kd_coef, double scale);

// A teacher cache's per-token numbers from raw fp32 logits z [m, V] (row stride ld) and their top-K
// (ids [m, K] and values [m, K], largest first): top log-probabilities (values - logsumexp) written
// into top_logp [m, K] and log(1 - sum p_K) into tail [m] (-inf when K = V), the rest summed exactly
// over the other ids, one pass per row.
void fused_top_logp_and_tail(const float* z, int64_t m, int64_t V, int64_t ld, const int64_t* ids, const float* values, int64_t K,
                             float* top_logp, float* tail);

}  // namespace moeforge::train
