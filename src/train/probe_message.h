// The probe's message for experts that receive no gradient before a phase: each expert named once
// (a layer's gate/up and down tensors starve together), with advice that fits the phase: force the
// experts when the phase does not, and when it does, the force_route_bias the model's stored
// selection bias (grow --router-bias) outbids.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moeforge::model {
struct ModelWeights;
}

namespace moeforge::train {

struct StarvedExpert {
  int64_t layer = -1, expert = -1;
  int64_t picks = 0;  // probe tokens routed to it
};

// "layer 0: experts 4 (0 of 64 probe tokens), 5 (0 of 64); layer 1: expert 4 (0 of 64) get no
// gradient; <advice>". Duplicates (same layer and expert) are merged. `forced`: layer -> experts the
// phase's routing.force_route forces with `force_route_bias`.
std::string starved_experts_message(const std::vector<StarvedExpert>& starved, int64_t probe_tokens,
                                    const std::map<int64_t, std::vector<int64_t>>& forced, double force_route_bias,
                                    const model::ModelWeights& weights);

}  // namespace moeforge::train
