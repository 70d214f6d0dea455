#include "io/dtype.h"

#include <cmath>
#include <cstring>

namespace moeforge {
namespace {
struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
  bool is_float;
};
constexpr DTypeRow kRows[] = {
    {DType::F64, "F64", 8, true},         {DType::F32, "F32", 4, true},
    {DType::F16, "F16", 2, true},         {DType::BF16, "BF16", 2, true},
    {DType::I64, "I64", 8, false},        {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false},        {DType::I8, "I8", 1, false},
    {DType::U64, "U64", 8, false},        {DType::U32, "U32", 4, false},
    {DType::U16, "U16", 2, false},        {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},      {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true}, {DType::F8_E8M0, "F8_E8M0", 1, true},
};
const DTypeRow& row(DType dtype) { return kRows[static_cast<size_t>(dtype)]; }
}  // namespace

size_t dtype_size(DType dtype) { return row(dtype).size; }
std::string_view dtype_name(DType dtype) { return row(dtype).name; }
bool dtype_is_float(DType dtype) { return row(dtype).is_float; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kRows)
    if (name == r.name) return r.dtype;
  return std::nullopt;
}

float bf16_to_float(uint16_t bits) {
  uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof value);
  return value;
}

uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);  // keep it a NaN
  uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);  // round to nearest, ties to even
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float fp16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F;
  uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int shift = 0;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        ++shift;
      }
      mantissa &= 0x3FF;
      bits = sign | ((127 - 15 - shift + 1) << 23) | (mantissa << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7F800000 | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

uint16_t float_to_fp16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  uint32_t exponent = (bits >> 23) & 0xFF;
  uint32_t mantissa = bits & 0x7FFFFF;
  if (exponent == 0xFF) return sign | 0x7C00 | (mantissa ? 0x200 : 0);
  int e = static_cast<int>(exponent) - 127 + 15;
  if (e >= 31) return sign | 0x7C00;  // overflow -> inf
  if (e <= 0) {                        // subnormal or zero
    if (e < -10) return sign;
    mantissa |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mantissa >> shift;
    uint32_t remainder = mantissa & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  uint32_t remainder = mantissa & 0x1FFF;
  if (remainder > 0x1000 || (remainder == 0x1000 && (half & 1))) ++half;  // may carry into exponent
  return sign | static_cast<uint16_t>(half);
}

}  // namespace moeforge

namespace moeforge {
namespace {

// True when no element has an all-ones exponent (inf or NaN). memcpy keeps unaligned reads legal.
template <typename Bits>
bool exponents_finite(const uint8_t* data, uint64_t count, Bits exponent_mask) {
  for (uint64_t i = 0; i < count; ++i) {
    Bits bits;
    std::memcpy(&bits, data + i * sizeof(Bits), sizeof(Bits));
    if ((bits & exponent_mask) == exponent_mask) return false;
  }
  return true;
}

}  // namespace

bool all_finite(const uint8_t* data, uint64_t count, DType dtype) {
  switch (dtype) {
    case DType::F64: return exponents_finite<uint64_t>(data, count, 0x7FF0000000000000ull);
    case DType::F32: return exponents_finite<uint32_t>(data, count, 0x7F800000u);
    case DType::F16: return exponents_finite<uint16_t>(data, count, 0x7C00u);
    case DType::BF16: return exponents_finite<uint16_t>(data, count, 0x7F80u);
    default: return true;
  }
}

}  // namespace moeforge
