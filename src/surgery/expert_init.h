// How upcycling turns one dense FFN into experts: copy, relative noise, Drop-Upcycling (re-init a
// fraction of intermediate units), granular slices of the FFN width, and output scaling.
#pragma once

#include <cstdint>
#include <vector>

#include "arch/expert_io.h"

namespace moeforge::surgery {

// Adds N(0, (rel_std * rms(W))^2) to every weight matrix W of the expert (biases untouched).
void add_relative_noise(ExpertWeights& w, double rel_std, uint64_t seed);

// Drop-Upcycling: re-initialises round(ratio * F) randomly chosen intermediate units (rows of
// gate/up, columns of down) from N(mean, std) of the whole dense matrix they belong to. `stats`
// comes from the dense weights so every expert draws from the same distribution.
struct MatrixStats {
  double gate_mean = 0, gate_std = 0, up_mean = 0, up_std = 0, down_mean = 0, down_std = 0;
};
MatrixStats matrix_stats(const ExpertWeights& dense);
void drop_upcycle(ExpertWeights& w, double ratio, const MatrixStats& stats, uint64_t seed);

// Slice g of G of the FFN width: units [g*F/G, (g+1)*F/G) of gate/up rows and down columns (and
// biases; the down bias is divided by G so the G slices sum to the dense output).
ExpertWeights granular_slice(const ExpertWeights& dense, int64_t g, int64_t G);

// Multiplies the expert's output (down and its bias) by `factor`.
void scale_output(ExpertWeights& w, double factor);

}  // namespace moeforge::surgery
