// Autoregressive generation with a KV cache: prefill the prompt once, then one token per step,
// sampling with temperature / top-k / top-p from a seeded generator (greedy at temperature 0).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "model/transformer.h"

namespace moeforge::model {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;                  // EOS ids: generation ends after emitting one
  std::map<int64_t, int64_t> force_expert;        // layer -> expert (single-expert inference)
};

// Returns the new token ids (without the prompt). `on_token` (optional) sees each id as it is made.
std::vector<int64_t> generate(const Transformer& model, const std::vector<int64_t>& prompt,
                              const SamplingOptions& options,
                              const std::function<void(int64_t)>& on_token = {});

// Picks the next id from logits [V] (float32) as the options say.
int64_t sample_next(const torch::Tensor& logits, const SamplingOptions& options, torch::Generator& generator);

}  // namespace moeforge::model
