#include "common/cpu_features.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <sstream>

namespace moeforge {
namespace {

bool read_bf16_flags() {
  std::ifstream in("/proc/cpuinfo");
  if (!in) return true;  // not Linux, or hidden: assume the hardware and say nothing
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 5, "flags") != 0) continue;
    std::istringstream flags(line.substr(line.find(':') + 1));
    std::string flag;
    while (flags >> flag)
      if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    return false;  // the first CPU's flags stand for all
  }
  return true;
}

}  // namespace

bool cpu_has_bf16_matmul() {
  static const bool has = read_bf16_flags();
  return has;
}

void note_bf16_without_hardware() {
  static bool said = false;
  if (said || cpu_has_bf16_matmul()) return;
  said = true;
  std::fprintf(stderr, "moeforge: note: bf16 on a CPU without AVX512-BF16 or AMX: moeforge computes the larger matrix products "
               "in fp32 from the bf16 tensors here (bf16 memory, about fp32 speed); the rest of bf16 work runs in software, so "
               "fp32 (--dtype fp32, or precision fp32 in a recipe) is as fast or faster on this machine\n");
}

}  // namespace moeforge
