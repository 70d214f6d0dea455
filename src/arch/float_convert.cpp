// Float decoding/encoding for F32/F16/BF16 tensors.
#include "arch/float_convert.h"

#include <cstring>

#include "common/error.h"
#include "io/checkpoint_store.h"

namespace moeforge {

void decode_floats(DType dtype, const uint8_t* src, size_t count, float* dst, const std::string& what) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      return;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, 2);
        dst[i] = dtype == DType::BF16 ? bf16_to_float(bits) : fp16_to_float(bits);
      }
      return;
    default:
      fail("tensor '", what, "' has dtype ", dtype_name(dtype), "; expected F32, F16 or BF16");
  }
}

void encode_floats(DType dtype, const float* src, size_t count, uint8_t* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits = dtype == DType::BF16 ? float_to_bf16(src[i]) : float_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &bits, 2);
      }
      return;
    default:
      fail("cannot write float values as ", dtype_name(dtype), "; use F32, F16 or BF16");
  }
}

std::vector<uint8_t> encode_floats(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  encode_floats(dtype, values.data(), values.size(), out.data());
  return out;
}

std::vector<float> read_float_range(const StoredTensor& tensor, uint64_t begin, uint64_t count) {
  const TensorInfo& info = *tensor.info;
  if (begin + count > info.num_elements())
    fail("tensor '", info.name, "': elements [", begin, ", ", begin + count, ") out of range (", info.num_elements(),
         " elements)");
  ByteView bytes = tensor.bytes();
  const size_t width = dtype_size(info.dtype);
  std::vector<float> out(count);
  decode_floats(info.dtype, bytes.data + begin * width, count, out.data(), info.name);
  return out;
}

std::vector<float> read_floats(const StoredTensor& tensor) {
  return read_float_range(tensor, 0, tensor.info->num_elements());
}

}  // namespace moeforge
