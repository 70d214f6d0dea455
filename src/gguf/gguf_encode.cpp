#include "gguf/gguf_encode.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "io/dtype.h"

namespace moeforge {
namespace {

uint16_t bf16_like_ggml(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((static_cast<uint64_t>(bits) + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

void encode_q8_0(const float* x, size_t count, uint8_t* out) {
  if (count % 32 != 0) fail("internal error: Q8_0 needs a multiple of 32 values, got ", count);
  for (size_t b = 0; b < count; b += 32, out += 34) {
    float amax = 0.0f;
    for (size_t i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[b + i]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const uint16_t d16 = float_to_fp16(d);
    std::memcpy(out, &d16, 2);
    for (size_t i = 0; i < 32; ++i) {
      const volatile float scaled = x[b + i] * id;  // one float32 product, as numpy computes it
      out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(static_cast<float>(scaled))));
    }
  }
}

}  // namespace

void encode_ggml(GgmlType type, const float* values, size_t count, std::vector<uint8_t>& out) {
  const size_t begin = out.size();
  out.resize(begin + ggml_bytes(type, count));
  uint8_t* dst = out.data() + begin;
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, values, count * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < count; ++i) {
        const uint16_t h = float_to_fp16(values[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < count; ++i) {
        const uint16_t h = bf16_like_ggml(values[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0:
      encode_q8_0(values, count, dst);
      return;
    case GgmlType::MXFP4:
      break;
  }
  out.resize(begin);
  fail("internal error: float values cannot be encoded as ", ggml_type_name(type));
}

void repack_mxfp4_row(const uint8_t* blocks, const uint8_t* scales, int64_t groups, std::vector<uint8_t>& out) {
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* src = blocks + g * 16;
    uint8_t values[32];
    for (int i = 0; i < 16; ++i) {
      values[2 * i] = src[i] & 0x0f;
      values[2 * i + 1] = src[i] >> 4;
    }
    out.push_back(scales[g]);
    for (int j = 0; j < 16; ++j) out.push_back(static_cast<uint8_t>(values[j] | (values[j + 16] << 4)));
  }
}

}  // namespace moeforge
