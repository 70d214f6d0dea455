// NEXUS's PCA importance of experts: PCA with n = min(max_components, T, E) components of the
// [tokens x experts] router-probability matrix of one layer;
//   importance[e] = sum_i |component_i[e]| * explained_variance_ratio_i.
// PCA via the eigendecomposition of the covariance (torch::linalg_eigh, float64); the explained
// variance ratio divides by the total variance (trace), as scikit-learn does.
#pragma once

#include <torch/types.h>

#include <vector>

namespace moeforge::stats {

struct PcaImportance {
  int64_t components = 0;
  std::vector<double> importance;                // [E]
  std::vector<double> explained_variance_ratio;  // [components], descending
};

// `probs_TE` [T, E] (any float dtype).
PcaImportance pca_importance(const torch::Tensor& probs_TE, int64_t max_components = 20);
// The same from moments: sum_t p_t [E] and sum_t p_t p_t^T [E, E] over T tokens.
PcaImportance pca_importance_from_moments(const torch::Tensor& sum_E, const torch::Tensor& outer_EE, int64_t tokens,
                                          int64_t max_components = 20);

}  // namespace moeforge::stats
