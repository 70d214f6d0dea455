// `--dump-steps`: batch, losses and gradients of a step in Hugging Face names (see step_dump.h).
#include "train/step_dump.h"

#include <torch/torch.h>

#include <map>
#include <string>

#include "io/atomic_file.h"
#include "io/checkpoint_writer.h"
#include "model/tensor_table.h"
#include "train/export.h"

namespace moeforge::train {

namespace {

std::string bytes_of(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

}  // namespace

void write_step_dump(const std::filesystem::path& dir, int64_t step, const ModelSpec& spec, const model::ModelWeights& weights,
                     const TrainableSet& set, const std::vector<data::Batch>& micro, const StepLosses& losses) {
  torch::NoGradGuard no_grad;
  // The model's weights with every trained tensor replaced by its full-shape gradient; the expert
  // tensors of a layer are encoded together, so those not trained read as zero.
  model::ModelWeights grads = weights;  // shallow: only the handles are replaced
  const bool tied = grads.lm_head.defined() && grads.lm_head.is_same(grads.embed);
  std::map<std::string, torch::Tensor*> by_name;
  model::for_each_runtime_tensor(grads, [&](const model::RuntimeTensor& entry, int64_t, const std::string& name, torch::Tensor& t) {
    by_name[name] = &t;
    if (entry.source == model::TensorSource::Experts) t = torch::zeros(t.sizes(), t.options().dtype(torch::kFloat32));
  });
  std::vector<std::pair<TensorDecl, std::string>> leaves;
  Selection changed = set.changed();
  for (const auto& t : set.tensors()) {
    if (t.lora) {
      changed.erase(t.name);
      const std::vector<std::pair<std::string, torch::Tensor>> factors = {{".lora_A", t.lora_a}, {".lora_B", t.lora_b}};
      for (const auto& [suffix, leaf] : factors) {
        auto g = leaf.grad().defined() ? leaf.grad() : torch::zeros_like(leaf);
        leaves.emplace_back(TensorDecl{"leaf." + t.name + suffix, DType::F32, g.sizes().vec()}, bytes_of(g.to(torch::kFloat32)));
      }
      continue;
    }
    auto g = t.value.grad().defined() ? t.value.grad() : torch::zeros_like(t.value);
    if (!t.experts.empty()) g = torch::zeros(t.base->sizes(), g.options()).index_copy(0, t.index, g);  // slice -> [E, ...]
    *by_name.at(t.name) = g.detach();
  }
  if (tied) grads.lm_head = grads.embed;
  auto blobs = encode_trainable(spec, grads, changed);
  blobs.insert(blobs.end(), leaves.begin(), leaves.end());
  // The batch as the forward saw it.
  std::vector<torch::Tensor> ids, mask;
  int64_t batch_size = 0;
  for (const auto& b : micro) {
    ids.push_back(torch::from_blob(const_cast<int32_t*>(b.ids.data()), {b.batch_size, b.block_size}, torch::kInt32).to(torch::kInt64));
    mask.push_back(torch::from_blob(const_cast<uint8_t*>(b.loss_mask.data()), {b.batch_size, b.block_size}, torch::kUInt8).clone());
    batch_size = b.batch_size;
  }
  auto ids_all = torch::cat(ids), mask_all = torch::cat(mask);
  blobs.emplace_back(TensorDecl{"input_ids", DType::I64, ids_all.sizes().vec()}, bytes_of(ids_all));
  blobs.emplace_back(TensorDecl{"loss_mask", DType::U8, mask_all.sizes().vec()}, bytes_of(mask_all));
  for (const auto& [name, value] : std::map<std::string, double>{
           {"loss.ce", losses.ce}, {"loss.lb", losses.lb}, {"loss.z", losses.z}, {"loss.total", losses.total}, {"lr", losses.lr}})
    blobs.emplace_back(TensorDecl{name, DType::F64, {}}, std::string(reinterpret_cast<const char*>(&value), sizeof(double)));
  std::filesystem::create_directories(dir);
  write_file_atomic(dir / ("step_" + std::to_string(step) + ".safetensors"),
                    serialize_safetensors(blobs, {{"format", "pt"},
                                                  {"step", std::to_string(step)},
                                                  {"micro_batches", std::to_string(micro.size())},
                                                  {"batch_size", std::to_string(batch_size)}}));
}

}  // namespace moeforge::train
