// Trainable tensors of a phase: whole tensors, expert slices and LoRA factors, and the effective
// weights the forward pass sees.
#include "train/trainable.h"

#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "common/strings.h"
#include "model/layer_recompute.h"
#include "model/mxfp4_experts.h"
#include "model/tensor_table.h"

namespace moeforge::train {

namespace {

// The table entry of a canonical name ("layers.3.experts.w_in" -> experts.w_in).
const model::RuntimeTensor& entry_of(const std::string& name) {
  const model::RuntimeTensor* entry = model::find_runtime_tensor(model::parse_canonical_name(name).local);
  if (!entry) fail("internal: '", name, "' is not a runtime tensor");
  return *entry;
}

bool is_stacked_experts(const std::string& name) { return entry_of(name).source == model::TensorSource::Experts; }

// Dimensions of one unit: a stacked expert tensor's per-expert shape, else the tensor's.
int64_t unit_dims(const std::string& name, const torch::Tensor& t) { return t.dim() - (is_stacked_experts(name) ? 1 : 0); }

}  // namespace

bool is_lora_target(const std::string& name, int64_t dims, const LoraOptions& lora) {
  const model::RuntimeTensor& entry = entry_of(name);
  if (entry.linear) return dims >= 2;
  return entry.group == model::TensorGroup::Router && dims >= 2 && lora.router;  // the router matrix, on request
}

torch::Tensor TrainableTensor::lora_delta() const {
  if (experts.empty()) return torch::mm(lora_b, lora_a) * lora_scale;  // [out, in]
  auto delta_n = torch::bmm(lora_b, lora_a) * lora_scale;              // [n, out, in]
  return torch::zeros(base->sizes(), delta_n.options()).index_add(0, index, delta_n);  // [E, out, in]
}

torch::Tensor TrainableTensor::effective() const {
  const auto dtype = base->scalar_type();  // the model's compute dtype; fp32 leaves are cast to it
  if (lora) {
    if (experts.empty()) return *base + (torch::mm(lora_b, lora_a) * lora_scale).to(dtype);                 // [out, in]
    return base->index_add(0, index, (torch::bmm(lora_b, lora_a) * lora_scale).to(dtype));                 // [E, out, in]
  }
  if (experts.empty()) return value.to(dtype);
  return base->index_copy(0, index, value.to(dtype));  // [E, ...]: selected experts from the slice
}

std::vector<ParamInfo> describe_parameters(const ModelSpec& spec) {
  // The table's sweep, which loading must produce: a packed expert stack is a parameter of its
  // full shape although the model holds at most its unpacked experts dense.
  std::vector<ParamInfo> out;
  for (const model::PlannedTensor& planned : model::planned_tensors(spec)) {
    ParamInfo p;
    p.name = planned.name;
    p.local_name = planned.entry->name;
    p.group = planned.entry->group;
    p.shape = planned.shape;
    p.layer = planned.layer;
    if (planned.entry->source == model::TensorSource::Experts) p.num_experts = p.shape[0];
    out.push_back(std::move(p));
  }
  return out;
}

void unpack_selected_experts(model::ModelWeights& weights, const std::vector<Selection>& selections,
                             const model::LayerWeightSource* held_elsewhere) {
  std::map<int64_t, std::vector<int64_t>> by_layer;
  for (const Selection& selection : selections)
    for (const auto& [name, mask] : selection) {
      if (!model::is_expert_weight_stack(entry_of(name))) continue;
      const int64_t layer = model::parse_canonical_name(name).layer;
      if (!weights.layers.at(layer).experts.packed.defined()) continue;
      for (int64_t e : selected_units(mask)) by_layer[layer].push_back(e);
    }
  for (auto& [layer, ids] : by_layer) {
    model::StackedExperts& stack = weights.layers[layer].experts;
    if (!held_elsewhere) {
      model::unpack_experts(stack, ids, weights.embed.scalar_type());
      continue;
    }
    // The blocks are split: decode from the whole stack, keep only the dense rows it adds.
    model::StackedExperts whole = held_elsewhere->gather(layer, weights.layers[layer]).experts;
    model::unpack_experts(whole, ids, weights.embed.scalar_type());
    stack.w_in = whole.w_in;
    stack.w_out = whole.w_out;
    stack.unpacked = whole.unpacked;
  }
}

TrainableSet::TrainableSet(model::ModelWeights& weights, const ModelSpec& spec, const Selection& selection,
                           const TrainableOptions& options)
    : weights_(&weights), tied_(weights.lm_head.defined() && weights.lm_head.is_same(weights.embed)) {
  // Canonical name -> model tensor.
  std::map<std::string, torch::Tensor*> by_name;
  model::for_each_parameter(weights, [&](const std::string& name, torch::Tensor& t) { by_name[name] = &t; });
  for (const auto& [name, mask] : selection) {
    auto it = by_name.find(name);
    if (it == by_name.end()) fail("internal: selected tensor '", name, "' is not a model parameter");
    TrainableTensor tt;
    tt.name = name;
    tt.base = it->second;
    tt.mask = mask;
    // A frozen tensor may be a read-only view of the mapped checkpoint; what trains gets its own copy.
    model::make_writable(weights, *tt.base);
    const bool stacked = is_stacked_experts(name);
    bool whole = !stacked || selects_all(mask);  // the base's every row trains
    if (stacked) {
      tt.experts = selected_units(mask);
      // The base's rows of the selected experts: the ids, or their rows among a packed stack's unpacked experts.
      const model::StackedExperts& stack = weights.layers.at(model::parse_canonical_name(name).layer).experts;
      const bool packed_rows = stack.packed.defined() && model::is_expert_weight_stack(entry_of(name));
      std::vector<int64_t> rows;
      for (int64_t e : tt.experts) {
        rows.push_back(packed_rows ? stack.row_of(e) : e);
        if (rows.back() < 0) fail("internal: expert ", e, " of '", name, "' is still packed; unpack it before training");
      }
      if (packed_rows) whole = rows.size() == static_cast<size_t>(tt.base->size(0));
      tt.index = torch::tensor(rows, torch::TensorOptions().dtype(torch::kInt64).device(tt.base->device()));
    }
    const int64_t dims = unit_dims(name, *tt.base);
    tt.lora = options.method == Method::Lora && is_lora_target(name, dims, options.lora);
    // Group settings: the first group whose selection covers this tensor.
    double lr_scale = 1.0, group_wd = -1.0;
    for (size_t g = 0; g < options.optimizer.groups.size(); ++g) {
      auto sel = options.group_selections.find(options.optimizer.groups[g].select);
      if (sel == options.group_selections.end() || !sel->second.count(name)) continue;
      lr_scale = options.optimizer.groups[g].lr_scale;
      group_wd = options.optimizer.groups[g].weight_decay;
      break;
    }
    // Decoupled weight decay: matrices (and LoRA factors) by default, vectors only when asked.
    const double wd = group_wd >= 0 ? group_wd
                      : (dims >= 2 || options.optimizer.decay_vectors) ? options.optimizer.weight_decay : 0.0;
    const double lora_wd = group_wd >= 0 ? group_wd : options.optimizer.weight_decay;
    // Mixed precision: an fp32 master (kept by the caller across phases) is what trains.
    if (options.masters && tt.base->scalar_type() != torch::kFloat32) {
      auto& m = (*options.masters)[name];
      if (!m.defined()) m = tt.base->detach().to(torch::kFloat32);
      tt.master = m;
    }
    const torch::Tensor& source = tt.master.defined() ? tt.master : *tt.base;  // fp32 values to train from
    if (tt.lora) {
      const int64_t r = options.lora.rank;
      tt.lora_scale = options.lora.alpha / static_cast<double>(r);
      const int64_t out_dim = tt.base->size(-2), in_dim = tt.base->size(-1);
      // Drawn on the CPU generator in fp32 whatever the device, so a run starts the same everywhere.
      auto cpu32 = torch::TensorOptions().dtype(torch::kFloat32);
      const double bound = 1.0 / std::sqrt(static_cast<double>(in_dim));  // kaiming_uniform(a=sqrt(5))
      const auto device = tt.base->device();
      if (stacked) {
        const int64_t n = static_cast<int64_t>(tt.experts.size());
        tt.lora_a = torch::empty({n, r, in_dim}, cpu32).uniform_(-bound, bound).to(device);  // [n, r, in]
        tt.lora_b = torch::zeros({n, out_dim, r}, cpu32.device(device));                      // [n, out, r]
      } else {
        tt.lora_a = torch::empty({r, in_dim}, cpu32).uniform_(-bound, bound).to(device);  // [r, in]
        tt.lora_b = torch::zeros({out_dim, r}, cpu32.device(device));                      // [out, r]
      }
      tt.lora_a.requires_grad_(true);
      tt.lora_b.requires_grad_(true);
      leaves_.push_back({name + ".lora_A", tt.lora_a, lr_scale, lora_wd});
      leaves_.push_back({name + ".lora_B", tt.lora_b, lr_scale, lora_wd});
    } else if (!whole) {
      tt.value = source.index_select(0, tt.index).detach().clone().requires_grad_(true);  // [n, ...]
      leaves_.push_back({name + ".slice", tt.value, lr_scale, wd});
    } else {
      tt.experts.clear();
      tt.index = torch::Tensor();
      tt.value = source;
      tt.value.requires_grad_(true);
      leaves_.push_back({name, tt.value, lr_scale, wd});
    }
    tensors_.push_back(std::move(tt));
  }
  (void)spec;
}

TrainableSet::~TrainableSet() {
  if (finished_) return;
  for (auto& t : tensors_)
    if (!t.lora && t.experts.empty() && t.value.requires_grad()) {
      t.value.mutable_grad() = torch::Tensor();
      t.value.requires_grad_(false);
    }
}

model::ModelWeights TrainableSet::effective_weights() const {
  model::ModelWeights copy = *weights_;
  std::map<std::string, const TrainableTensor*> by_name;
  for (const auto& t : tensors_) by_name[t.name] = &t;
  model::for_each_parameter(copy, [&](const std::string& name, torch::Tensor& t) {
    auto it = by_name.find(name);
    if (it != by_name.end()) t = it->second->effective();
  });
  if (tied_) copy.lm_head = copy.embed;
  return copy;
}

void TrainableSet::write_back() {
  torch::NoGradGuard no_grad;
  for (auto& t : tensors_) {
    if (t.lora) continue;
    if (t.experts.empty()) {
      if (t.master.defined()) t.base->copy_(t.value.detach());  // fp32 master -> model precision
      continue;
    }
    if (t.master.defined()) t.master.index_copy_(0, t.index, t.value.detach());
    t.base->index_copy_(0, t.index, t.value.detach().to(t.base->scalar_type()));
  }
}

void TrainableSet::finish() {
  if (finished_) return;
  torch::NoGradGuard no_grad;
  write_back();
  for (auto& t : tensors_) {
    if (t.lora) {
      if (t.master.defined()) {
        t.master.add_(t.lora_delta().detach());
        t.base->copy_(t.master);
      } else {
        t.base->add_(t.lora_delta().detach());
      }
    } else if (t.experts.empty()) {
      t.value.mutable_grad() = torch::Tensor();
      t.value.requires_grad_(false);
    }
  }
  finished_ = true;
}

void TrainableSet::zero_grad() {
  for (auto& leaf : leaves_)
    if (leaf.tensor.grad().defined()) leaf.tensor.mutable_grad() = torch::Tensor();
}

Selection TrainableSet::changed() const {
  Selection out;
  for (const auto& t : tensors_) {
    out[t.name] = t.mask;
  }
  return out;
}

}  // namespace moeforge::train
