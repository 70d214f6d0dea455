// Calibration sampling (NEXUS's distribution-aware rule): from a pool of candidate blocks, pick
// blocks greedily, each time the one whose addition makes the sample's token unigram distribution
// closest to the pool's, KL(sample || pool), until the sample holds the target number of tokens.
// NEXUS also adds a small length bonus; blocks here have one length, so it is left out.
#pragma once

#include <cstdint>
#include <vector>

namespace moeforge::stats {

struct CalibrationResult {
  std::vector<size_t> chosen;  // indices into the candidate list, in selection order
  double kl = 0;               // KL(sample || pool) of the final sample (nats)
};

// `candidates[i]`: the real (non-padding) token ids of candidate block i. Cost: one pass over all
// candidate tokens per selected block (incremental KL; only the block's own ids change).
CalibrationResult select_calibration(const std::vector<std::vector<int32_t>>& candidates, int64_t target_tokens);

// KL(p || q) of two count vectors over the same ids (normalised here); helper for tests.
double unigram_kl(const std::vector<double>& p_counts, const std::vector<double>& q_counts);

}  // namespace moeforge::stats
