// Fused CE + forward-KL gradient of one head chunk (distill_kernel.h). Formulas, with s = z / T,
// q = softmax over the compared columns, P the teacher's buckets (its K ids + a tail, or all ids):
//   d KL / d s_j = q_j - P_j on the K ids, q_j (1 - P_tail / Q_tail) elsewhere (all ids: q_j - p_j);
//   d/dz = that / T, times T^2 for the loss; d CE / d z = softmax(z) - onehot(target).
// The loops are `omp simd` maps and reductions (-fopenmp-simd: no OpenMP runtime) over a polynomial
// exp, so the compiler vectorises them; each row's kernel is cloned for AVX-512, AVX2 and baseline
// x86-64 and picked at run time.
#include "train/distill_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/error.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOEFORGE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOEFORGE_CLONES
#endif
// The loops must be inlined into each clone to be compiled for its instruction set.
#define MOEFORGE_INLINE inline __attribute__((always_inline))

namespace moeforge::train {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x) for x <= 0: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite, two-part ln2), exp(r) by its
// degree-7 Taylor polynomial (truncation < 1e-8 relative), 2^n from the exponent bits. Below -87
// it returns ~1e-38 instead of underflowing: nothing here can tell the difference.
MOEFORGE_INLINE float exp_le0(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (x - fn * 0.693145751953125f) - fn * 1.428606820309417232e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, 4);
  return p * two_n;
}

MOEFORGE_INLINE float max_of(const float* x, int64_t n) {
  float m = kNegInf;
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// sum over [0, n) of exp(x * a + b): float partial sums of 1024 elements, added in double.
MOEFORGE_INLINE double sum_exp(const float* x, int64_t n, float a, float b) {
  double total = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t n1 = std::min<int64_t>(1024, n - i0);
    const float* y = x + i0;
    float part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t i = 0; i < n1; ++i) part += exp_le0(y[i] * a + b);
    total += part;
  }
  return total;
}

// x[j] = c1 exp(x[j] + b1) (+ c2 exp(x[j] a2 + b2)).
MOEFORGE_INLINE void map_exp(float* x, int64_t n, float c1, float b1) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = c1 * exp_le0(x[j] + b1);
}
MOEFORGE_INLINE void map_exp2(float* x, int64_t n, float c1, float b1, float c2, float a2, float b2) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = c1 * exp_le0(x[j] + b1) + c2 * exp_le0(x[j] * a2 + b2);
}

// The online teacher over all compared columns: x[j] = c1 exp(x + b1) + c2 (q_T - p_T), with
// q_T = exp(x a + bq), p_T = exp(t a + bp); accumulates sum p_T (log p_T - log q_T) into kd and
// (when kl1 is wanted, T != 1) sum p_1 (log p_1 - log q_1) with log p_1 = t + bp1, log q_1 = x + bq1.
MOEFORGE_INLINE void map_full(float* x, const float* t, int64_t n, float c1, float b1, float c2, float a, float bq, float bp, bool want_kl1,
                     float bq1, float bp1, double& kd, double& kl1) {
  const float k1 = want_kl1 ? 1.0f : 0.0f;
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t n1 = std::min<int64_t>(1024, n - i0);
    float* y = x + i0;
    const float* u = t + i0;
    float pkd = 0, pkl = 0;
#pragma omp simd reduction(+ : pkd, pkl)
    for (int64_t i = 0; i < n1; ++i) {
      const float lq = y[i] * a + bq, lp = u[i] * a + bp;
      const float q = exp_le0(lq), p = exp_le0(lp);
      pkd += p * (lp - lq);
      const float lp1 = u[i] + bp1;
      pkl += k1 * exp_le0(lp1) * (lp1 - (y[i] + bq1));
      y[i] = c1 * exp_le0(y[i] + b1) + c2 * (q - p);
    }
    kd += pkd;
    kl1 += pkl;
  }
}

// The same at T = 1 over all columns: q = exp(x + bq) serves the CE and the KL; two exps per column.
MOEFORGE_INLINE void map_full_t1(float* x, const float* t, int64_t n, float c_q, float c_p, float bq, float bp, double& kd) {
  for (int64_t i0 = 0; i0 < n; i0 += 1024) {
    const int64_t n1 = std::min<int64_t>(1024, n - i0);
    float* y = x + i0;
    const float* u = t + i0;
    float pkd = 0;
#pragma omp simd reduction(+ : pkd)
    for (int64_t i = 0; i < n1; ++i) {
      const float lq = y[i] + bq, lp = u[i] + bp;
      const float p = exp_le0(lp);
      pkd += p * (lp - lq);
      y[i] = c_q * exp_le0(lq) - c_p * p;
    }
    kd += pkd;
  }
}

MOEFORGE_INLINE int64_t first_index_of(const float* x, int64_t n, float v) {
  for (int64_t j = 0; j < n; ++j)
    if (x[j] == v) return j;
  return 0;
}

struct RowSums {
  double ce = 0, kd = 0, kl1 = 0;
  bool agree = false;
};

// log-softmax of n doubles (-inf entries stay -inf).
void log_softmax(const double* x, int64_t n, double* out) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  const double l = m + std::log(s);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - l;
}

// sum P (log P - log Q) over buckets where P > 0.
double kl_of(const double* logp, const double* logq, int64_t n) {
  double kl = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(logp[i])) kl += std::exp(logp[i]) * (logp[i] - logq[i]);
  return kl;
}

struct RowArgs {
  int64_t V, cols, K;
  float invT;
  double T, ce_coef, kd_coef, scale;
  FusedTeacher::Kind kind;
};

MOEFORGE_CLONES RowSums row_kernel(float* z, int64_t target, float w, const float* t_logits, const int64_t* t_ids, const float* t_logp,
                                   float t_tail, const RowArgs& a, std::vector<int64_t>& sorted, std::vector<float>& zk) {
  RowSums out;
  const int64_t V = a.V, C = a.cols, K = a.K;
  const bool buckets = a.kind == FusedTeacher::Kind::Buckets, full = a.kind == FusedTeacher::Kind::Full;
  const bool teacher = buckets || full, tempered = a.T != 1.0;
  // Pass 1: maxima over the compared columns and the padded rest.
  const float mc = max_of(z, C);
  const float mp = C < V ? max_of(z + C, V - C) : kNegInf;
  const float m1 = std::max(mc, mp);
  const int64_t s_arg = first_index_of(z, C, mc);
  // Pass 2: sums of exp over the compared columns, the teacher's ids apart (Buckets).
  double sc1_rest = 0, sT_rest = 0, sc1_k = 0, sT_k = 0;
  const float zt = z[target];
  if (buckets) {
    sorted.assign(t_ids, t_ids + K);
    std::sort(sorted.begin(), sorted.end());
    int64_t from = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t id = sorted[static_cast<size_t>(k)];
      if (id < from || id >= C) fail("distillation: teacher id ", id, " repeated or outside the ", C, " compared columns");
      sc1_rest += sum_exp(z + from, id - from, 1.0f, -mc);
      if (tempered) sT_rest += sum_exp(z + from, id - from, a.invT, -mc * a.invT);
      from = id + 1;
    }
    sc1_rest += sum_exp(z + from, C - from, 1.0f, -mc);
    if (tempered) sT_rest += sum_exp(z + from, C - from, a.invT, -mc * a.invT);
    zk.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) {
      zk[static_cast<size_t>(k)] = z[t_ids[k]];
      sc1_k += std::exp(static_cast<double>(z[t_ids[k]]) - mc);
      if (tempered) sT_k += std::exp((static_cast<double>(z[t_ids[k]]) - mc) * a.invT);
    }
  } else {
    sc1_rest = sum_exp(z, C, 1.0f, -mc);
    if (tempered && full) sT_rest = sum_exp(z, C, a.invT, -mc * a.invT);
  }
  if (!tempered) sT_rest = sc1_rest, sT_k = sc1_k;
  const double sc1 = sc1_rest + sc1_k, sT = sT_rest + sT_k;
  const double s_pad = C < V ? sum_exp(z + C, V - C, 1.0f, -m1) : 0.0;
  const double s1 = sc1 * std::exp(static_cast<double>(mc) - m1) + s_pad;
  const double L1 = m1 + std::log(s1), Lc1 = mc + std::log(sc1), LT = mc * static_cast<double>(a.invT) + std::log(sT);
  out.ce = L1 - zt;
  const double ws = static_cast<double>(w) * a.scale, a_ce = ws * a.ce_coef, a_kd = ws * a.kd_coef * a.T;
  if (!teacher) {
    map_exp(z, V, static_cast<float>(a_ce), static_cast<float>(-L1));
  } else if (buckets) {
    // The teacher's buckets at T (tempered and renormalised with the tail as one bucket), at T = 1.
    std::vector<double> x(static_cast<size_t>(K + 1)), P(x.size()), P1(x.size()), Q(x.size());
    for (int64_t k = 0; k < K; ++k) x[static_cast<size_t>(k)] = static_cast<double>(t_logp[k]) / a.T;
    x[static_cast<size_t>(K)] = static_cast<double>(t_tail) / a.T;
    log_softmax(x.data(), K + 1, P.data());
    const double q_tail = std::max(sT_rest / sT, 1e-20);
    for (int64_t k = 0; k < K; ++k) Q[static_cast<size_t>(k)] = zk[static_cast<size_t>(k)] / a.T - LT;
    Q[static_cast<size_t>(K)] = std::log(q_tail);
    out.kd = kl_of(P.data(), Q.data(), K + 1);
    if (tempered || C != V) {
      for (int64_t k = 0; k < K; ++k) x[static_cast<size_t>(k)] = t_logp[k];
      x[static_cast<size_t>(K)] = t_tail;
      log_softmax(x.data(), K + 1, P1.data());
      for (int64_t k = 0; k < K; ++k) Q[static_cast<size_t>(k)] = zk[static_cast<size_t>(k)] - Lc1;
      Q[static_cast<size_t>(K)] = std::log(std::max(sc1_rest / sc1, 1e-20));
      out.kl1 = kl_of(P1.data(), Q.data(), K + 1);
    } else {
      out.kl1 = out.kd;
    }
    int64_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (t_logp[k] > t_logp[best]) best = k;
    out.agree = s_arg == t_ids[best];
    // Pass 3: every column, then the K ids and the target fixed up.
    const double c = 1.0 - std::exp(P[static_cast<size_t>(K)]) / q_tail;
    if (!tempered && C == V)
      map_exp(z, V, static_cast<float>(a_ce + a_kd * c), static_cast<float>(-L1));
    else
      map_exp2(z, C, static_cast<float>(a_ce), static_cast<float>(-L1), static_cast<float>(a_kd * c), a.invT, static_cast<float>(-LT));
    if (C < V) map_exp(z + C, V - C, static_cast<float>(a_ce), static_cast<float>(-L1));
    for (int64_t k = 0; k < K; ++k) {
      const double zv = zk[static_cast<size_t>(k)];
      z[t_ids[k]] = static_cast<float>(a_ce * std::exp(zv - L1) + a_kd * (std::exp(zv / a.T - LT) - std::exp(P[static_cast<size_t>(k)])));
    }
  } else {
    // Online teacher, all compared columns.
    const float tm = max_of(t_logits, C);
    const int64_t t_arg = first_index_of(t_logits, C, tm);
    out.agree = s_arg == t_arg;
    const double ts1 = sum_exp(t_logits, C, 1.0f, -tm);
    const double tsT = tempered ? sum_exp(t_logits, C, a.invT, -tm * a.invT) : ts1;
    const double Lt1 = tm + std::log(ts1), LtT = tm * static_cast<double>(a.invT) + std::log(tsT);
    double kd = 0, kl1 = 0;
    const bool want_kl1 = tempered || C != V;  // else KL at T = 1 is the divergence itself
    if (want_kl1)
      map_full(z, t_logits, C, static_cast<float>(a_ce), static_cast<float>(-L1), static_cast<float>(a_kd), a.invT, static_cast<float>(-LT),
               static_cast<float>(-LtT), true, static_cast<float>(-Lc1), static_cast<float>(-Lt1), kd, kl1);
    else  // T = 1, all columns: L1 = LT
      map_full_t1(z, t_logits, C, static_cast<float>(a_ce + a_kd), static_cast<float>(a_kd), static_cast<float>(-L1), static_cast<float>(-Lt1), kd);
    if (C < V) map_exp(z + C, V - C, static_cast<float>(a_ce), static_cast<float>(-L1));
    out.kd = kd;
    out.kl1 = want_kl1 ? kl1 : kd;
  }
  z[target] -= static_cast<float>(a_ce);
  return out;
}

}  // namespace

namespace {

MOEFORGE_CLONES void top_row(const float* z, int64_t V, const int64_t* ids, const float* values, int64_t K, float* top_logp, float* tail,
                             std::vector<int64_t>& sorted) {
  const float mx = values[0];  // topk is sorted: the row's maximum
  sorted.assign(ids, ids + K);
  std::sort(sorted.begin(), sorted.end());
  double rest = 0;
  int64_t from = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t id = sorted[static_cast<size_t>(k)];
    if (id < from || id >= V) fail("teacher cache: top-K id ", id, " repeated or outside the ", V, " columns");
    rest += sum_exp(z + from, id - from, 1.0f, -mx);
    from = id + 1;
  }
  rest += sum_exp(z + from, V - from, 1.0f, -mx);
  double top = 0;
  for (int64_t k = 0; k < K; ++k) top += std::exp(static_cast<double>(values[k]) - mx);
  const double lse = mx + std::log(top + rest);
  for (int64_t k = 0; k < K; ++k) top_logp[k] = static_cast<float>(values[k] - lse);
  *tail = rest > 0 ? static_cast<float>(mx + std::log(rest) - lse) : kNegInf;
}

}  // namespace

void fused_top_logp_and_tail(const float* z, int64_t m, int64_t V, int64_t ld, const int64_t* ids, const float* values, int64_t K,
                             float* top_logp, float* tail) {
  at::parallel_for(0, m, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> sorted;
    for (int64_t r = begin; r < end; ++r) top_row(z + r * ld, V, ids + r * K, values + r * K, K, top_logp + r * K, tail + r, sorted);
  });
}

FusedSums fused_forward_kl_chunk(float* z, int64_t m, int64_t V, int64_t cols, const int64_t* target, const float* w,
                                 const FusedTeacher& t, double temperature, double ce_coef, double kd_coef, double scale) {
  const RowArgs args{V, cols, t.K, static_cast<float>(1.0 / temperature), temperature, ce_coef, kd_coef, scale, t.kind};
  std::vector<RowSums> rows(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r)
    if (target[r] < 0 || target[r] >= V) fail("distillation: target id ", target[r], " outside the vocabulary of ", V);
  at::parallel_for(0, m, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> sorted;
    std::vector<float> zk;
    for (int64_t r = begin; r < end; ++r) {
      const bool full = t.kind == FusedTeacher::Kind::Full, buckets = t.kind == FusedTeacher::Kind::Buckets;
      rows[static_cast<size_t>(r)] =
          row_kernel(z + r * V, target[r], w[r], full ? t.logits + r * cols : nullptr, buckets ? t.ids + r * t.K : nullptr,
                     buckets ? t.logp + r * t.K : nullptr, buckets ? t.tail[r] : 0.0f, args, sorted, zk);
    }
  });
  FusedSums s;
  for (int64_t r = 0; r < m; ++r) {
    const RowSums& x = rows[static_cast<size_t>(r)];
    s.ce += x.ce * w[r];
    s.kd += x.kd * w[r] * temperature * temperature;
    s.kl1 += x.kl1 * w[r];
    s.agree += x.agree ? 1 : 0;
  }
  return s;
}

}  // namespace moeforge::train
