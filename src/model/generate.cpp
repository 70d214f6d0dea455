#include "model/generate.h"

#include <torch/torch.h>

#include "common/error.h"

namespace moeforge::model {

int64_t sample_next(const torch::Tensor& logits_V, const SamplingOptions& options, torch::Generator& generator) {
  if (options.temperature <= 0) return logits_V.argmax().item<int64_t>();
  auto scaled = logits_V.to(torch::kFloat32) / options.temperature;
  if (options.top_k > 0 && options.top_k < scaled.size(0)) {
    auto kth = std::get<0>(scaled.topk(options.top_k)).min();
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<float>::infinity());
  }
  if (options.top_p < 1.0) {  // nucleus: smallest set of tokens whose probability reaches top_p
    auto [sorted, order] = scaled.sort(/*dim=*/0, /*descending=*/true);
    auto cumulative = torch::softmax(sorted, 0).cumsum(0);
    auto drop_sorted = (cumulative - torch::softmax(sorted, 0)) >= options.top_p;  // keep the token crossing top_p
    auto drop = torch::zeros_like(drop_sorted).scatter_(0, order, drop_sorted);
    scaled = scaled.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = torch::softmax(scaled, 0);
  return torch::multinomial(probs.cpu(), 1, false, generator).item<int64_t>();
}

std::vector<int64_t> generate(const Transformer& model, const std::vector<int64_t>& prompt,
                              const SamplingOptions& options, const std::function<void(int64_t)>& on_token) {
  if (prompt.empty()) fail("the prompt has no tokens");
  torch::NoGradGuard no_grad;
  auto generator = torch::make_generator<at::CPUGeneratorImpl>(options.seed);
  KvCache cache;
  ForwardOptions forward;
  forward.cache = &cache;
  forward.last_token_logits_only = true;
  forward.force_expert = options.force_expert;
  std::vector<int64_t> produced;
  auto input = torch::tensor(prompt, torch::kInt64).unsqueeze(0);  // [1, T] prefill
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto logits = model.forward(input, forward).logits[0][-1];  // [V]
    int64_t next = sample_next(logits, options, generator);
    produced.push_back(next);
    if (on_token) on_token(next);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) break;
    input = torch::tensor({next}, torch::kInt64).unsqueeze(0);  // [1, 1] decode step
  }
  return produced;
}

}  // namespace moeforge::model
