// MXFP4 (OCP microscaling FP4, as GPT-OSS stores its experts): each byte holds two E2M1 values,
// low nibble first; every block of 32 values along the input dimension shares one E8M0 scale byte:
//   value = kFp4Values[nibble] * 2^(scale - 127).
// Same convention as transformers' integrations/mxfp4.py (_convert_moe_packed_tensors: LUT
// FP4_VALUES, lo nibble -> even column, ldexp(scale - 127), reshape and transpose(1, 2)) and as
// REFERENCE.md section 3. One note: scale 255 (NaN in E8M0) is not special-cased there either; it
// decodes to 2^128 = inf here as well.
#pragma once

#include <cstdint>
#include <vector>

namespace moeforge {

extern const float kFp4Values[16];  // +0 .5 1 1.5 2 3 4 6 -0 -.5 -1 -1.5 -2 -3 -4 -6
constexpr int64_t kMxfp4BlockSize = 32;  // values per scale
constexpr int64_t kMxfp4BlockBytes = 16;  // bytes per block

// blocks [rows, groups, 16] u8 + scales [rows, groups] u8 -> out [rows, groups * 32] float,
// row-major (row = output channel, column = input index).
void mxfp4_dequantize_rows(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t groups, float* out);

// transformers' layout: blocks [E, R, G, 16] + scales [E, R, G] -> [E, G * 32, R] (transposed, as
// the bf16 GPT-OSS tensors gate_up_proj [E, H, 2F] / down_proj [E, F, H]).
std::vector<float> mxfp4_dequantize_transposed(const uint8_t* blocks, const uint8_t* scales, int64_t experts,
                                               int64_t rows, int64_t groups);

// Quantises [rows, cols] floats (cols % 32 == 0) into blocks [rows, cols/32, 16] and scales
// [rows, cols/32]. Per block the scale is the smallest power of two with max|x| / 2^s <= 6 (so no
// value clips), clamped to E8M0's [2^-127, 2^127]; all-zero blocks get scale 127 (2^0); each value
// rounds to the nearest FP4 magnitude, ties to the even code.
void mxfp4_quantize_rows(const float* in, int64_t rows, int64_t cols, uint8_t* blocks, uint8_t* scales);

// The FP4 code (0..15) nearest to x (already divided by the block scale), saturating at +-6.
uint8_t fp4_encode(float x);

}  // namespace moeforge
