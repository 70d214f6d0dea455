// The probe's starved-expert message (see probe_message.h).
#include "train/probe_message.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/strings.h"
#include "model/model_weights.h"

namespace moeforge::train {
namespace {

bool is_forced(const std::map<int64_t, std::vector<int64_t>>& forced, int64_t layer, int64_t expert) {
  auto it = forced.find(layer);
  return it != forced.end() && std::find(it->second.begin(), it->second.end(), expert) != it->second.end();
}

// How far the stored selection bias puts `expert` behind the most favoured expert of its layer.
double stored_bias_gap(const model::ModelWeights& weights, int64_t layer, int64_t expert) {
  if (layer < 0 || layer >= static_cast<int64_t>(weights.layers.size())) return 0;
  const torch::Tensor& bias = weights.layers[layer].score_correction_bias;
  if (!bias.defined() || expert >= bias.numel()) return 0;
  auto b = bias.detach().to(torch::kCPU, torch::kFloat64);
  return b.max().item<double>() - b[expert].item<double>();
}

}  // namespace

std::string starved_experts_message(const std::vector<StarvedExpert>& starved, int64_t probe_tokens,
                                    const std::map<int64_t, std::vector<int64_t>>& forced, double force_route_bias,
                                    const model::ModelWeights& weights) {
  std::map<int64_t, std::map<int64_t, int64_t>> by_layer;  // layer -> expert -> picks
  for (const auto& s : starved) by_layer[s.layer][s.expert] = s.picks;
  std::vector<std::string> layers, unforced;
  bool all_forced = true;
  double gap = 0;
  for (const auto& [layer, experts] : by_layer) {
    std::vector<std::string> items;
    for (const auto& [expert, picks] : experts) {
      items.push_back(cat(expert, " (", picks, " of ", probe_tokens, " probe tokens)"));
      if (is_forced(forced, layer, expert)) {
        gap = std::max(gap, stored_bias_gap(weights, layer, expert));
      } else {
        all_forced = false;
        unforced.push_back(cat(layer, ":", expert));
      }
    }
    layers.push_back(cat("layer ", layer, ": expert", experts.size() > 1 ? "s " : " ", join(items, ", ")));
  }
  std::string advice;
  if (!all_forced) {
    advice = cat("set routing.force_route to \"selected\" or \"", join(unforced, ","), "\"");
  } else if (gap >= force_route_bias) {
    advice = cat("routing.force_route already forces them with force_route_bias ", force_route_bias,
                 ", but the model's stored selection bias (moeforge_selection_bias, e.g. grow --router-bias) favours "
                 "other experts by up to ", gap, ": set force_route_bias above ", gap, " (e.g. ", gap + 12, ")");
  } else {
    advice = cat("routing.force_route already forces them with force_route_bias ", force_route_bias,
                 "; raise it, or check that the probe batch reaches these layers");
  }
  return cat(join(layers, "; "), (by_layer.size() == 1 && by_layer.begin()->second.size() == 1) ? " gets" : " get", " no gradient; ", advice);
}

}  // namespace moeforge::train
