// summarize_model(): parameter counts from the expected-tensor list, dtypes from the store.
#include "arch/model_summary.h"

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "arch/validate_store.h"
#include "io/checkpoint_store.h"

namespace moeforge {

ModelSummary summarize_model(const CheckpointStore& store) {
  ModelSummary s;
  s.spec = load_model_spec(store);
  s.directory = store.directory().string();
  StoreValidation validation = validate_store(s.spec, store);
  s.warnings = validation.warnings;
  const ModelSpec& spec = s.spec;
  uint64_t packed_bytes = 0, packed_params = 0;  // MXFP4 blocks and scales as stored
  for_each_tensor(spec, [&](const ExpectedTensor& t) {
    if (t.role == TensorRole::ExpertsGateUpBlocks || t.role == TensorRole::ExpertsDownBlocks ||
        t.role == TensorRole::ExpertsGateUpScales || t.role == TensorRole::ExpertsDownScales) {
      uint64_t bytes = 1;
      for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
      packed_bytes += bytes;
      packed_params += t.logical_params;
    }
    s.total_params += t.logical_params;
    if (t.routed_experts) s.routed_expert_params += t.logical_params;
    if (t.role == TensorRole::Embed || t.role == TensorRole::PositionEmbed || t.role == TensorRole::LmHead)
      s.embedding_params += t.logical_params;
  });
  uint64_t inactive = 0;
  if (spec.has_moe()) {
    const uint64_t E = static_cast<uint64_t>(spec.moe.num_experts), k = static_cast<uint64_t>(spec.moe.top_k);
    // Every expert of a layer has the same size, so the unused share is exactly (E - k) / E.
    inactive = s.routed_expert_params / E * (E - k);
  }
  s.active_params = s.total_params - inactive;
  for (const std::string& name : store.tensor_names()) {
    StoredTensor t = store.tensor(name);
    std::string dtype(dtype_name(t.info->dtype));
    s.dtype_tensor_counts[dtype] += 1;
    s.dtype_bytes[dtype] += t.info->num_bytes();
  }
  s.num_tensors = store.tensor_names().size();
  s.bytes_on_disk = store.bytes_on_disk();
  s.fp32_weight_bytes = s.total_params * 4;
  s.bf16_weight_bytes = s.total_params * 2;
  if (packed_bytes) s.packed_bf16_weight_bytes = (s.total_params - packed_params) * 2 + packed_bytes;
  return s;
}

}  // namespace moeforge
