// PCA importance from a probability matrix or its moments (see pca_importance.h).
#include "stats/pca_importance.h"

#include <torch/torch.h>

#include "common/error.h"

namespace moeforge::stats {
namespace {

// cov_EE: sample covariance (float64). n components of T tokens.
PcaImportance from_covariance(const torch::Tensor& cov_EE, int64_t tokens, int64_t max_components) {
  const int64_t E = cov_EE.size(0);
  PcaImportance out;
  out.components = std::min({max_components, tokens, E});
  out.importance.assign(static_cast<size_t>(E), 0.0);
  if (out.components < 1) return out;
  auto [values_E, vectors_EE] = torch::linalg_eigh(cov_EE);  // ascending eigenvalues, columns = vectors
  values_E = values_E.clamp_min(0.0);
  const double total = values_E.sum().item<double>();
  if (total <= 0) {
    out.explained_variance_ratio.assign(static_cast<size_t>(out.components), 0.0);
    return out;
  }
  auto top = torch::arange(E - 1, E - 1 - out.components, -1, torch::kLong);
  auto ratio_n = values_E.index_select(0, top) / total;                    // [n]
  auto comps_En = vectors_EE.index_select(1, top).abs();                   // [E, n]
  auto importance_E = torch::mv(comps_En, ratio_n).contiguous();           // [E]
  out.importance.assign(importance_E.data_ptr<double>(), importance_E.data_ptr<double>() + E);
  auto r = ratio_n.contiguous();
  out.explained_variance_ratio.assign(r.data_ptr<double>(), r.data_ptr<double>() + out.components);
  return out;
}

}  // namespace

PcaImportance pca_importance(const torch::Tensor& probs_TE, int64_t max_components) {
  if (probs_TE.dim() != 2) fail("PCA: probabilities must be [tokens, experts]");
  const int64_t T = probs_TE.size(0);
  auto x_TE = probs_TE.to(torch::kCPU, torch::kDouble);
  auto centred_TE = x_TE - x_TE.mean(0, true);
  auto cov_EE = torch::mm(centred_TE.t(), centred_TE) / static_cast<double>(std::max<int64_t>(1, T - 1));
  return from_covariance(cov_EE, T, max_components);
}

PcaImportance pca_importance_from_moments(const torch::Tensor& sum_E, const torch::Tensor& outer_EE, int64_t tokens,
                                          int64_t max_components) {
  const double T = static_cast<double>(tokens);
  auto s_E = sum_E.to(torch::kCPU, torch::kDouble);
  auto cov_EE = (outer_EE.to(torch::kCPU, torch::kDouble) - torch::outer(s_E, s_E) / T) / std::max(1.0, T - 1.0);
  return from_covariance(cov_EE, tokens, max_components);
}

}  // namespace moeforge::stats
