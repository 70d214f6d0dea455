// Logit comparison of two model directories with the runtime (see verify.h).
#include "surgery/verify.h"

#include <torch/torch.h>

#include <random>

#include "model/transformer.h"

namespace moeforge::surgery {

VerifyResult compare_models(const std::filesystem::path& a, const std::filesystem::path& b, const VerifyOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> reference;
  std::vector<torch::Tensor> ids;
  VerifyResult result;
  {
    auto model = model::Transformer::load(a);
    const ModelSpec& spec = model->spec();
    int64_t length = options.sequence_length;
    if (spec.max_position_embeddings > 0) length = std::min(length, spec.max_position_embeddings);
    std::mt19937_64 rng(options.seed + 1234);
    for (int64_t s = 0; s < options.num_sequences; ++s) {
      std::vector<int64_t> tokens(static_cast<size_t>(length));
      for (auto& t : tokens) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.vocab_size));
      ids.push_back(torch::tensor(tokens, torch::kInt64).unsqueeze(0));
      reference.push_back(model->forward(ids.back()).logits);  // [1, T, V]
    }
  }
  auto model = model::Transformer::load(b);
  for (size_t s = 0; s < ids.size(); ++s) {
    auto logits = model->forward(ids[s]).logits;
    result.max_abs_diff = std::max(result.max_abs_diff, (logits - reference[s]).abs().max().item<double>());
    result.max_abs_logit = std::max(result.max_abs_logit, reference[s].abs().max().item<double>());
    result.tokens += ids[s].size(1);
  }
  return result;
}

VerifyResult compare_selection_bias(const std::filesystem::path& model_dir,
                                    const std::map<int64_t, std::vector<float>>& selection_bias, const VerifyOptions& options) {
  torch::NoGradGuard no_grad;
  auto model = model::Transformer::load(model_dir);
  const ModelSpec& spec = model->spec();
  model::ForwardOptions with_bias;
  for (const auto& [l, b] : selection_bias) with_bias.selection_bias[l] = torch::tensor(b, torch::kFloat32);
  int64_t length = options.sequence_length;
  if (spec.max_position_embeddings > 0) length = std::min(length, spec.max_position_embeddings);
  std::mt19937_64 rng(options.seed + 1234);
  VerifyResult result;
  for (int64_t s = 0; s < options.num_sequences; ++s) {
    std::vector<int64_t> tokens(static_cast<size_t>(length));
    for (auto& t : tokens) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.vocab_size));
    auto ids = torch::tensor(tokens, torch::kInt64).unsqueeze(0);
    auto kept = model->forward(ids, with_bias).logits;
    auto dropped = model->forward(ids).logits;
    result.max_abs_diff = std::max(result.max_abs_diff, (kept - dropped).abs().max().item<double>());
    result.max_abs_logit = std::max(result.max_abs_logit, kept.abs().max().item<double>());
    result.tokens += length;
  }
  return result;
}

}  // namespace moeforge::surgery
