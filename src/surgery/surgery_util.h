// Small helpers shared by the surgery commands: seeded normal draws, float tensor groups, layer
// lists ("0,2,5-7"), and an expert's canonical weights as flat float vectors.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/expert_io.h"
#include "arch/model_spec.h"
#include "common/seed_mix.h"
#include "surgery/output_plan.h"

namespace moeforge::surgery {

using moeforge::mix_seed;  // a seed for one (purpose, layer, expert) from the user's seed
// n draws of N(mean, std^2) from std::mt19937_64(seed) (deterministic on a given platform).
std::vector<float> normal_floats(size_t n, double mean, double std, uint64_t seed);
// n draws of U(-bound, bound) from std::mt19937_64(seed).
std::vector<float> uniform_floats(size_t n, double bound, uint64_t seed);

// A group producing one float tensor [shape] in `dtype` from `make()` (called when written).
OutputGroup float_tensor_group(GroupKind kind, const std::string& what, const std::string& name, DType dtype,
                               std::vector<int64_t> shape, std::function<std::vector<float>()> make,
                               uint64_t bytes_read = 0);
// Encodes floats in `dtype` and writes them as tensor `name`.
void write_floats(CheckpointWriter& writer, const std::string& name, DType dtype, const std::vector<float>& values);

// "all" or "0,2,5-7" -> sorted unique layer indices in [0, num_layers); names `flag` on errors.
std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers, const std::string& flag);

// Mean and standard deviation of a vector (population).
void mean_std(const std::vector<float>& values, double& mean, double& std);

// The floating dtype the output should use for new tensors next to `name` in `store`.
DType float_dtype_of(const CheckpointStore& store, const std::string& name);

}  // namespace moeforge::surgery
