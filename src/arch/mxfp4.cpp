// MXFP4 dequantiser and quantiser (see mxfp4.h for the convention).
#include "arch/mxfp4.h"

#include <cmath>

#include "common/error.h"

namespace moeforge {

const float kFp4Values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                              -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

void mxfp4_dequantize_rows(const uint8_t* blocks, const uint8_t* scales, int64_t rows, int64_t groups, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t block = r * groups + g;
      const float scale = std::ldexp(1.0f, static_cast<int>(scales[block]) - 127);
      const uint8_t* bytes = blocks + block * kMxfp4BlockBytes;
      float* dst = out + block * kMxfp4BlockSize;
      for (int64_t i = 0; i < kMxfp4BlockBytes; ++i) {
        dst[2 * i] = kFp4Values[bytes[i] & 0x0F] * scale;     // low nibble first
        dst[2 * i + 1] = kFp4Values[bytes[i] >> 4] * scale;
      }
    }
  }
}

std::vector<float> mxfp4_dequantize_transposed(const uint8_t* blocks, const uint8_t* scales, int64_t experts,
                                               int64_t rows, int64_t groups) {
  const int64_t cols = groups * kMxfp4BlockSize;
  std::vector<float> plain(static_cast<size_t>(rows * cols));
  std::vector<float> out(static_cast<size_t>(experts * rows * cols));
  for (int64_t e = 0; e < experts; ++e) {
    mxfp4_dequantize_rows(blocks + e * rows * groups * kMxfp4BlockBytes, scales + e * rows * groups, rows, groups,
                          plain.data());
    float* dst = out.data() + e * rows * cols;  // [cols, rows]
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = plain[r * cols + c];
  }
  return out;
}

uint8_t fp4_encode(float x) {
  const bool negative = std::signbit(x);
  const float a = std::fabs(x);
  // Magnitudes 0 .5 1 1.5 2 3 4 6 at codes 0..7; pick the nearest, ties to the even code.
  uint8_t best = 0;
  float best_err = INFINITY;
  for (uint8_t code = 0; code < 8; ++code) {
    const float err = std::fabs(a - kFp4Values[code]);
    if (err < best_err || (err == best_err && (code % 2 == 0))) {
      best = code;
      best_err = err;
    }
  }
  if (std::isnan(x)) best = 0;
  return static_cast<uint8_t>(best | (negative && best != 0 ? 8 : 0));
}

void mxfp4_quantize_rows(const float* in, int64_t rows, int64_t cols, uint8_t* blocks, uint8_t* scales) {
  if (cols % kMxfp4BlockSize != 0) fail("MXFP4 needs a multiple of 32 input columns, got ", cols);
  const int64_t groups = cols / kMxfp4BlockSize;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = in + r * cols + g * kMxfp4BlockSize;
      float amax = 0.0f;
      for (int64_t i = 0; i < kMxfp4BlockSize; ++i) amax = std::fmax(amax, std::fabs(src[i]));
      int exponent = 0;
      if (amax > 0.0f && std::isfinite(amax)) {
        exponent = static_cast<int>(std::ceil(std::log2(amax / 6.0f)));
        // log2 may be off by one ulp near powers of two: settle it exactly.
        while (amax / std::ldexp(1.0f, exponent) > 6.0f) ++exponent;
        while (exponent > -127 && amax / std::ldexp(1.0f, exponent - 1) <= 6.0f) --exponent;
        if (exponent < -127) exponent = -127;
        if (exponent > 127) exponent = 127;
      }
      const int64_t block = r * groups + g;
      scales[block] = static_cast<uint8_t>(exponent + 127);
      uint8_t* dst = blocks + block * kMxfp4BlockBytes;
      for (int64_t i = 0; i < kMxfp4BlockBytes; ++i) {
        const uint8_t lo = fp4_encode(std::ldexp(src[2 * i], -exponent));
        const uint8_t hi = fp4_encode(std::ldexp(src[2 * i + 1], -exponent));
        dst[i] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  }
}

}  // namespace moeforge
