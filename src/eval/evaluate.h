// Evaluation of a model on token blocks: token-weighted cross-entropy and perplexity (padding and
// masked tokens excluded), per-domain loss, per-layer expert usage, balance score and balanced
// perplexity (REFERENCE.md section 1), and, against a baseline model (a teacher, the model before
// training): both losses side by side, the mean per-token KL(baseline || model), top-1 agreement and
// per MoE layer the router drift (L1 distance of the mean expert probabilities).
#pragma once

#include <torch/types.h>

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "model/transformer.h"

namespace moeforge::dist {
class World;
}

namespace moeforge::eval {

// One sequence to score: ids[t] predicts ids[t+1] where loss_mask[t+1] is set.
struct EvalSequence {
  std::vector<int64_t> ids;
  std::vector<uint8_t> loss_mask;  // same length as ids; empty = every token counts
  std::string domain;              // "" when unknown
};

// The blocks of one split as sequences to score (padding dropped). With max_blocks > 0 at most that
// many, spread evenly over the split: blocks are grouped by domain, so the first N would score only
// the first domains. Empty when the split has no blocks.
std::vector<EvalSequence> sequences_of(const data::Dataset& dataset, data::Split split, int64_t max_blocks = 0);

struct EvalOptions {
  int64_t batch_size = 8;
  double balance_beta = 1.0;  // balanced ppl = ppl * exp(beta * (1 - balance))
  bool progress = false;      // progress bar on stderr
  // Against a baseline whose vocabulary differs only by a padded tail: compare the first
  // compare_vocab ids (the tokenizer's). 0 = the vocabularies must be equal.
  int64_t compare_vocab = 0;
  // Several ranks: each scores every N-th batch; the sums are exchanged, every rank gets the result.
  dist::World* world = nullptr;
  // A streamed model (over the memory budget): consecutive batches of one length run layer-major in
  // groups of up to this many bytes of hidden states (capped by half of what the budget leaves);
  // 0 = batch by batch.
  int64_t layer_major_bytes = 512ll << 20;
};

struct RouterDrift {
  int64_t layer = -1;
  double l1 = 0.0;  // sum over experts |mean p_model - mean p_baseline| (an expert one side lacks counts 0 there)
};

struct LayerUsage {
  int64_t layer = -1;
  std::vector<int64_t> counts;  // top-k picks per expert (real tokens only)
  double balance = 0.0;         // H(p) / log E of the normalised utilisation
};

struct EvalResult {
  double loss = 0.0;  // token-weighted mean cross-entropy (nats)
  double perplexity = 0.0;
  int64_t tokens = 0;
  std::map<std::string, std::pair<double, int64_t>> domain_loss;          // domain -> (mean CE, tokens)
  std::map<std::string, std::vector<LayerUsage>> domain_usage;            // domain -> per-layer usage
  std::vector<LayerUsage> usage;                                          // per MoE layer
  double balance_score = 1.0;         // mean over MoE layers (1 for dense models)
  double balanced_perplexity = 0.0;
  // Baseline comparison (present when a baseline was given).
  bool has_baseline = false;
  double baseline_loss = 0.0, baseline_perplexity = 0.0;
  double mean_kl = 0.0;  // mean over scored tokens of KL(baseline || model)
  double top1_agreement = 0.0;  // fraction of scored tokens whose argmax ids agree
  std::vector<RouterDrift> router_drift;  // MoE layers both models have
};

EvalResult evaluate(const model::Transformer& model, const std::vector<EvalSequence>& sequences,
                    const EvalOptions& options, const model::Transformer* baseline = nullptr);

// Balance of one layer's pick counts: H(p) / log(E), 1 = perfectly even.
double balance_score(const std::vector<int64_t>& counts);

nlohmann::json to_json(const EvalResult& result);
std::string to_table(const EvalResult& result);

}  // namespace moeforge::eval
