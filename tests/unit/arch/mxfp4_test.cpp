// MXFP4: dequantisation checked against values computed by hand from the FP4 table, the
// transformers layout (transpose), and the quantiser's scale choice and rounding.
#include <gtest/gtest.h>

#include <cmath>

#include "arch/mxfp4.h"

namespace moeforge {
namespace {

TEST(ArchMxfp4, DequantiseByHand) {
  // One row, one block: bytes 0x21 -> lo 1 (0.5), hi 2 (1.0); 0xF7 -> lo 7 (6.0), hi 15 (-6.0);
  // 0x98 -> lo 8 (-0), hi 9 (-0.5). Scale 128 -> x2.
  uint8_t blocks[16] = {0x21, 0xF7, 0x98};
  uint8_t scale = 128;
  float out[32];
  mxfp4_dequantize_rows(blocks, &scale, 1, 1, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  EXPECT_EQ(out[2], 12.0f);
  EXPECT_EQ(out[3], -12.0f);
  EXPECT_EQ(out[4], 0.0f);
  EXPECT_TRUE(std::signbit(out[4]));
  EXPECT_EQ(out[5], -1.0f);
  for (int i = 6; i < 32; ++i) EXPECT_EQ(out[i], 0.0f);
  scale = 125;  // 2^-2
  blocks[0] = 0x5C;  // lo 12 (-2.0), hi 5 (3.0)
  mxfp4_dequantize_rows(blocks, &scale, 1, 1, out);
  EXPECT_EQ(out[0], -0.5f);
  EXPECT_EQ(out[1], 0.75f);
}

TEST(ArchMxfp4, TransposedLayoutMatchesTransformers) {
  // blocks [E=1, R=2, G=1, 16] -> [E, 32, R]: column r of the output is row r of the blocks.
  uint8_t blocks[32] = {};
  uint8_t scales[2] = {127, 127};
  blocks[0] = 0x02;        // row 0: value 0 = 1.0
  blocks[16 + 15] = 0x70;  // row 1: value 31 = 6.0
  std::vector<float> out = mxfp4_dequantize_transposed(blocks, scales, 1, 2, 1);
  ASSERT_EQ(out.size(), 64u);
  EXPECT_EQ(out[0 * 2 + 0], 1.0f);
  EXPECT_EQ(out[31 * 2 + 1], 6.0f);
  EXPECT_EQ(out[0 * 2 + 1], 0.0f);
}

TEST(ArchMxfp4, EncodeRounding) {
  EXPECT_EQ(fp4_encode(0.0f), 0);
  EXPECT_EQ(fp4_encode(1.5f), 3);
  EXPECT_EQ(fp4_encode(-4.0f), 14);
  EXPECT_EQ(fp4_encode(100.0f), 7);    // saturates
  EXPECT_EQ(fp4_encode(0.25f), 0);     // tie 0 / 0.5 -> even code 0
  EXPECT_EQ(fp4_encode(0.75f), 2);     // tie 0.5 / 1.0 -> even code 2
  EXPECT_EQ(fp4_encode(2.5f), 4);      // tie 2 / 3 -> code 4
  EXPECT_EQ(fp4_encode(5.0f), 6);      // tie 4 / 6 -> code 6
  EXPECT_EQ(fp4_encode(-2.9f), 13);    // -3
  EXPECT_EQ(fp4_encode(-0.1f), 0);     // rounds to zero: +0 code
}

TEST(ArchMxfp4, QuantiseScaleAndRoundTrip) {
  // Values exactly representable with scale 2^1: FP4 table x 2. Max 12 -> s = ceil(log2(12/6)) = 1.
  float in[32];
  for (int i = 0; i < 32; ++i) in[i] = kFp4Values[i % 16] * 2.0f;
  uint8_t blocks[16], scale;
  mxfp4_quantize_rows(in, 1, 32, blocks, &scale);
  EXPECT_EQ(scale, 128);
  EXPECT_EQ(blocks[0], 0x10);  // codes 0 and 1
  float out[32];
  mxfp4_dequantize_rows(blocks, &scale, 1, 1, out);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], in[i]) << i;
  // A block with max 7 needs scale 2^1 (7/2 = 3.5 <= 6); 3.5 rounds to 4 (tie 3/4 -> even code).
  float b[32] = {7.0f};
  mxfp4_quantize_rows(b, 1, 32, blocks, &scale);
  EXPECT_EQ(scale, 128);
  mxfp4_dequantize_rows(blocks, &scale, 1, 1, out);
  EXPECT_EQ(out[0], 8.0f);
  float zeros[32] = {};
  mxfp4_quantize_rows(zeros, 1, 32, blocks, &scale);
  EXPECT_EQ(scale, 127);
  // Exactly 6 * 2^-3 fits scale 2^-3 (not 2^-2).
  float small[32] = {0.75f};
  mxfp4_quantize_rows(small, 1, 32, blocks, &scale);
  EXPECT_EQ(scale, 124);
  EXPECT_EQ(blocks[0] & 0x0F, 7);
}

}  // namespace
}  // namespace moeforge
