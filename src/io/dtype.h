// Element types of tensors on disk, with the names safetensors uses ("F32", "BF16", ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moeforge {

enum class DType : uint8_t {
  F64, F32, F16, BF16,
  I64, I32, I16, I8,
  U64, U32, U16, U8,
  BOOL,
  F8_E4M3, F8_E5M2, F8_E8M0,
};

// Bytes per element (every supported dtype is a whole number of bytes).
size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType dtype);
// Parses the safetensors spelling; nullopt for an unknown name.
std::optional<DType> parse_dtype(std::string_view name);
bool dtype_is_float(DType dtype);

// Whether every element of `count` values of a float dtype (F64/F32/F16/BF16) stored at `data` is
// finite, read in place from the exponent bits (no copy, no conversion). Other dtypes: true.
bool all_finite(const uint8_t* data, uint64_t count, DType dtype);

// Scalar conversions used by the dequantiser and by tests (round-to-nearest-even for bf16).
float bf16_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);
float fp16_to_float(uint16_t bits);
uint16_t float_to_fp16(float value);

}  // namespace moeforge
