// float32 rows -> the bytes of a ggml type, bit for bit as llama.cpp's converter (gguf-py's quants)
// computes them, and GPT-OSS MXFP4 blocks -> ggml's block_mxfp4 without dequantising.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gguf/gguf_file.h"

namespace moeforge {

// Appends the encoding of `count` floats (a multiple of 32 for Q8_0) to `out`.
//   F16:  round to nearest even (numpy's astype(float16));
//   BF16: round to nearest even, NaN quietened (ggml_compute_fp32_to_bf16);
//   Q8_0: per 32 values d = max|x| / 127 (stored fp16), q = round-half-away(x / d) (ggml-quants.c).
void encode_ggml(GgmlType type, const float* values, size_t count, std::vector<uint8_t>& out);

// One row of GPT-OSS MXFP4 (`groups` blocks of 16 bytes, value 2i in the low nibble of byte i, 2i+1
// in the high one, plus one E8M0 scale per block) -> ggml block_mxfp4 (scale byte, then 16 bytes
// whose byte j holds value j low and value j + 16 high). Only bits move.
void repack_mxfp4_row(const uint8_t* blocks, const uint8_t* scales, int64_t groups, std::vector<uint8_t>& out);

}  // namespace moeforge
