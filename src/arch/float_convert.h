// Conversions between on-disk float tensors (F32/F16/BF16, F64) and float32 buffers: no libtorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace moeforge {

struct StoredTensor;

// Decodes `count` elements starting at `src`; throws naming `what` for non-float dtypes.
void decode_floats(DType dtype, const uint8_t* src, size_t count, float* dst, const std::string& what);
// Encodes to F32/F16/BF16 (round to nearest even); throws for other dtypes.
void encode_floats(DType dtype, const float* src, size_t count, uint8_t* dst);
std::vector<uint8_t> encode_floats(DType dtype, const std::vector<float>& values);

// Whole tensor -> floats.
std::vector<float> read_floats(const StoredTensor& tensor);
// Elements [begin, begin + count) of a tensor (flattened, row-major) -> floats.
std::vector<float> read_float_range(const StoredTensor& tensor, uint64_t begin, uint64_t count);

}  // namespace moeforge
