#include "tensor/torch_bridge.h"

#include <sys/mman.h>
#include <unistd.h>

#include <torch/torch.h>

#include "common/error.h"

namespace moeforge {

torch::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
    case DType::F8_E4M3: return torch::kFloat8_e4m3fn;
    case DType::F8_E5M2: return torch::kFloat8_e5m2;
    default: fail("dtype ", dtype_name(dtype), " has no libtorch equivalent");
  }
}

DType from_scalar_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    case torch::kFloat8_e4m3fn: return DType::F8_E4M3;
    case torch::kFloat8_e5m2: return DType::F8_E5M2;
    default: fail("torch dtype ", c10::toString(type), " cannot be stored in safetensors");
  }
}

namespace {

// The storage context of a view: a reference to the shard keeps its mapping alive. The deleter's
// address also identifies views (is_mapped_view).
struct MappingReference {
  std::shared_ptr<const SafetensorsFile> file;
};
void release_mapping_reference(void* context) { delete static_cast<MappingReference*>(context); }

}  // namespace

torch::Tensor view_tensor(const StoredTensor& stored) {
  ByteView bytes = stored.bytes();
  auto options = torch::TensorOptions().dtype(to_scalar_type(stored.info->dtype));
  auto* reference = new MappingReference{stored.file};
  // for_blob needs a non-const pointer; the mapping is PROT_READ, so a write would fault.
  return at::for_blob(const_cast<uint8_t*>(bytes.data), stored.info->shape)
      .context(reference, &release_mapping_reference)
      .options(options)
      .make_tensor();
}

bool is_mapped_view(const torch::Tensor& t) {
  return t.defined() && t.has_storage() && t.storage().data_ptr().get_deleter() == &release_mapping_reference;
}

void release_mapped_pages(const torch::Tensor& t) {
  if (!is_mapped_view(t)) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.storage().data());
  const uintptr_t end = begin + t.storage().nbytes();
  const uintptr_t first = begin & ~(page - 1), last = (end + page - 1) & ~(page - 1);  // whole pages: the file is unchanged
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

bool view_is_aligned(const StoredTensor& stored) {
  return reinterpret_cast<uintptr_t>(stored.bytes().data) % dtype_size(stored.info->dtype) == 0;
}

torch::Tensor load_tensor(const StoredTensor& stored, torch::ScalarType type) {
  return view_tensor(stored).to(type, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace moeforge
