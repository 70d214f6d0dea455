// What the host CPU offers for half-precision matrix products, read once from /proc/cpuinfo.
#pragma once

namespace moeforge {

// Whether the CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX-BF16). Without either,
// libtorch's bf16 GEMMs fall back to a scalar path some 8-10x slower than fp32 with a transposed
// right operand and ~50x slower with a row-major one (an AVX2-only AMD EPYC, 2 threads); moeforge
// then computes its larger products in fp32 (model/linear.h). True where the flags cannot be read.
bool cpu_has_bf16_matmul();

// Prints once per process, to stderr, that bf16 runs slowly on this CPU (nothing where it has the
// hardware): model loads in bf16 on the CPU call it.
void note_bf16_without_hardware();

}  // namespace moeforge
