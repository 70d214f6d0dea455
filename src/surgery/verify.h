// Runs two models with the runtime on the same random token sequences and measures the largest
// absolute logit difference (upcycle --verify, grow and add-shared-expert reports).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

namespace moeforge::surgery {

struct VerifyOptions {
  int64_t num_sequences = 3;
  int64_t sequence_length = 32;  // clipped to the models' position limits
  uint64_t seed = 0;
};

struct VerifyResult {
  double max_abs_diff = 0;   // max |logits_a - logits_b| over all sequences and positions
  double max_abs_logit = 0;  // scale reference: max |logits_a|
  int64_t tokens = 0;
};

// Loads both models (fp32, CPU) one after the other's logits are computed, so at most both are
// resident at once only briefly.
VerifyResult compare_models(const std::filesystem::path& a, const std::filesystem::path& b, const VerifyOptions& options = {});

// `model` run as it is vs with `selection_bias` (layer -> [E]) added to its routers' selection
// scores: what dropping that stored bias changed (merge-deltas / pipeline --drop-selection-bias).
VerifyResult compare_selection_bias(const std::filesystem::path& model, const std::map<int64_t, std::vector<float>>& selection_bias,
                                    const VerifyOptions& options = {});

}  // namespace moeforge::surgery
