// trainable.safetensors, PEFT adapters and merge-deltas (see export.h).
#include "train/export.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "model/tensor_table.h"
#include "arch/remote_code.h"
#include "surgery/verify.h"

namespace moeforge::train {

namespace fs = std::filesystem;
using Role = TensorRole;

namespace {

std::string float_bytes(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::vector<float> to_floats(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Expert `expert` of a stack -> ExpertWeights (gate/up split of w_in rows); `row` is its row of
// w_in/w_out (the expert itself, or its row among a packed stack's unpacked experts).
ExpertWeights expert_weights(const model::StackedExperts& s, int64_t row, int64_t expert) {
  const int64_t H = s.w_in.size(2), F = s.w_out.size(2);
  const bool gated = s.w_in.size(1) == 2 * F;
  ExpertWeights w;
  w.hidden_size = H;
  w.intermediate_size = F;
  auto w_in = s.w_in[row];  // [R, H]
  w.up = to_floats(gated ? w_in.narrow(0, F, F) : w_in);
  if (gated) w.gate = to_floats(w_in.narrow(0, 0, F));
  w.down = to_floats(s.w_out[row]);  // [H, F]
  if (s.b_in.defined()) {
    auto b = s.b_in[expert];
    w.up_bias = to_floats(gated ? b.narrow(0, F, F) : b);
    if (gated) w.gate_bias = to_floats(b.narrow(0, 0, F));
  }
  if (s.b_out.defined()) w.down_bias = to_floats(s.b_out[expert]);
  return w;
}

// A layer whose MXFP4 experts stayed packed, in its checkpoint's MXFP4 layout: experts still
// packed are copied byte for byte from `store`, the unpacked (trained) ones quantised, and the
// biases of every expert taken from the run (the copied ones may have trained too).
std::vector<EncodedTensor> packed_layer_tensors(const ModelSpec& spec, const CheckpointStore* store, int64_t layer,
                                                const model::StackedExperts& s) {
  if (!store) fail("internal: layer ", layer, " holds packed MXFP4 experts but no checkpoint to copy them from was given");
  std::vector<ExpertWeights> trained;
  trained.reserve(s.unpacked.size());
  for (size_t i = 0; i < s.unpacked.size(); ++i) trained.push_back(expert_weights(s, static_cast<int64_t>(i), s.unpacked[i]));
  std::vector<ExpertSource> sources;
  // The spec's count: under ZeRO-3 the blocks held may be this rank's shard of them.
  const int64_t E = spec.moe.num_experts;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t row = s.row_of(e);
    sources.push_back(row >= 0 ? ExpertSource::from(trained[row]) : ExpertSource::copy_of(spec, *store, layer, e));
  }
  auto out = encode_layer_experts(spec, layer, sources, DType::BF16);
  for (EncodedTensor& t : out) {
    torch::Tensor values;  // the file's layout: gate_up bias [E, 2F] interleaved (gate, up, gate, ...), down bias [E, H]
    if (s.b_in.defined() && t.decl.name == tensor_name(spec, Role::ExpertsGateUpBias, layer))
      values = s.b_in.view({E, 2, -1}).permute({0, 2, 1}).reshape({E, -1});
    else if (s.b_out.defined() && t.decl.name == tensor_name(spec, Role::ExpertsDownBias, layer))
      values = s.b_out;
    if (!values.defined()) continue;
    const std::vector<float> floats = to_floats(values);
    t.bytes = encode_floats(t.decl.dtype, floats);
  }
  return out;
}

}  // namespace

std::vector<HfPiece> hf_pieces(const ModelSpec& spec, const std::string& canonical, int64_t rows) {
  const model::CanonicalName name = model::parse_canonical_name(canonical);
  const model::RuntimeTensor* entry = model::find_runtime_tensor(name.local);
  if (entry && entry->source == model::TensorSource::Role) return {{tensor_name(spec, entry->role, name.layer), 0, -1}};
  // [gate; up] rows, or up alone when ungated (GPT-Neo c_fc).
  if (entry && entry->source == model::TensorSource::GateUpRows) {
    if (!spec_has_role(spec, entry->gate_role, name.layer)) return {{tensor_name(spec, entry->role, name.layer), 0, -1}};
    return {{tensor_name(spec, entry->gate_role, name.layer), 0, rows / 2},
            {tensor_name(spec, entry->role, name.layer), rows / 2, rows / 2}};
  }
  fail("tensor '", canonical, "' has no Hugging Face name in family ", spec.model_type);
}

std::vector<std::pair<TensorDecl, std::string>> encode_trainable(const ModelSpec& spec, model::ModelWeights& weights,
                                                                const Selection& changed, const CheckpointStore* model_store) {
  std::map<std::string, torch::Tensor*> by_name;
  model::for_each_parameter(weights, [&](const std::string& name, torch::Tensor& t) { by_name[name] = &t; });
  std::vector<std::pair<TensorDecl, std::string>> blobs;
  std::map<int64_t, std::vector<bool>> expert_layers;  // layer -> experts changed
  for (const auto& [name, mask] : changed) {
    const model::CanonicalName canonical = model::parse_canonical_name(name);
    const int64_t layer = canonical.layer;
    const model::RuntimeTensor* entry = model::find_runtime_tensor(canonical.local);
    if (entry && entry->source == model::TensorSource::Experts) {
      auto& m = expert_layers[layer];
      if (m.empty()) m.assign(mask.size(), false);
      for (size_t e = 0; e < mask.size(); ++e) m[e] = m[e] || mask[e];
      continue;
    }
    const torch::Tensor& t = *by_name.at(name);
    for (const auto& piece : hf_pieces(spec, name, t.dim() > 0 ? t.size(0) : 1)) {
      auto part = piece.rows < 0 ? t : t.narrow(0, piece.row_begin, piece.rows);
      blobs.emplace_back(TensorDecl{piece.name, DType::F32, part.sizes().vec()}, float_bytes(part));
    }
  }
  ModelSpec out_spec = spec;  // trained experts are written unquantised
  if (out_spec.moe.layout == ExpertLayout::Mxfp4) out_spec.moe.layout = ExpertLayout::FusedInterleaved;
  for (const auto& [layer, mask] : expert_layers) {
    const model::StackedExperts& stack = weights.layers.at(layer).experts;
    if (stack.packed.defined()) {
      for (auto& enc : packed_layer_tensors(spec, model_store, layer, stack))
        blobs.emplace_back(enc.decl, std::string(enc.bytes.begin(), enc.bytes.end()));
      continue;
    }
    std::vector<ExpertWeights> experts;
    for (int64_t e = 0; e < stack.num_experts(); ++e) experts.push_back(expert_weights(stack, e, e));
    std::vector<ExpertSource> sources;
    for (const auto& w : experts) sources.push_back(ExpertSource::from(w));
    std::set<std::string> keep;  // per-expert layout: only the trained experts' tensors
    if (out_spec.moe.layout == ExpertLayout::PerExpert)
      for (size_t e = 0; e < mask.size(); ++e)
        if (mask[e])
          for (Role r : {Role::ExpertGate, Role::ExpertUp, Role::ExpertDown, Role::ExpertUpBias, Role::ExpertDownBias})
            if (spec_has_role(out_spec, r, layer)) keep.insert(tensor_name(out_spec, r, layer, static_cast<int64_t>(e)));
    for (auto& enc : encode_layer_experts(out_spec, layer, sources, DType::F32)) {
      if (out_spec.moe.layout == ExpertLayout::PerExpert && !keep.count(enc.decl.name)) continue;
      blobs.emplace_back(enc.decl, std::string(enc.bytes.begin(), enc.bytes.end()));
    }
  }
  std::sort(blobs.begin(), blobs.end(), [](const auto& a, const auto& b) { return a.first.name < b.first.name; });
  return blobs;
}

std::vector<std::string> write_trainable(const ModelSpec& spec, model::ModelWeights& weights, const Selection& changed,
                                         const fs::path& path, const CheckpointStore* model_store) {
  const auto blobs = encode_trainable(spec, weights, changed, model_store);
  std::vector<std::string> names;
  for (const auto& b : blobs) names.push_back(b.first.name);
  write_file_atomic(path, serialize_safetensors(blobs, {{"format", "pt"}}));
  return names;
}

size_t merge_deltas(const MergeOptions& o) {
  auto base = CheckpointStore::open(o.base);
  const fs::path trainable_path = o.run / "trainable.safetensors";
  if (!fs::exists(trainable_path)) fail(o.run.string(), ": no trainable.safetensors (is this a finished `moeforge train` run?)");
  auto trained = CheckpointStore::open(trainable_path);
  // The base must be the model the run trained: a tensor it lacks, or holds in another shape, is
  // named with the likely cause (an MXFP4 base only when it really stores that tensor packed).
  std::string trained_on;
  if (fs::exists(o.run / "run.json")) trained_on = read_json_file(o.run / "run.json").value("model", std::string());
  const std::string which = trained_on.empty() ? "" : " (the run trained " + trained_on + "; is " + o.base.string() + " that model?)";
  for (const auto& name : trained->tensor_names()) {
    if (!base->contains(name)) {
      if (base->contains(name + "_blocks"))
        fail(trainable_path.string(), ": tensor '", name, "' is stored in MXFP4 in ", o.base.string(),
             ", which cannot take trained experts; merge into the dequantised base (moeforge upcycle/grow --dequantize)");
      fail(trainable_path.string(), ": tensor '", name, "' is not in the base model ", o.base.string(), which);
    }
    const auto& want = base->tensor(name).info->shape;
    const auto& have = trained->tensor(name).info->shape;
    if (want != have)
      fail(trainable_path.string(), ": tensor '", name, "' is ", shape_to_string(have), ", the base's ", shape_to_string(want), which);
  }
  nlohmann::json config = base->read_json("config.json");
  // --drop-selection-bias: the selection-only bias (grow --router-bias) is left out; kept for the measurement.
  const bool drop = o.drop_selection_bias && config.value("moeforge_selection_bias", false);
  if (o.drop_selection_bias && !drop) std::cout << "drop-selection-bias: " << o.base.string() << " has no selection bias\n";
  std::map<int64_t, std::vector<float>> dropped;
  std::vector<TensorDecl> decls;
  for (const auto& name : base->tensor_names()) {
    if (drop && ends_with(name, ".mlp.moeforge_selection_bias")) {
      dropped[std::stoll(name.substr(std::string("model.layers.").size()))] = read_floats(base->tensor(name));
      continue;
    }
    const TensorInfo& info = *base->tensor(name).info;
    decls.push_back({name, info.dtype, info.shape});
  }
  if (drop) config.erase("moeforge_selection_bias");
  WriterOptions wo;
  wo.overwrite = o.overwrite;
  CheckpointWriter writer(o.out, decls, wo);
  size_t replaced = 0;
  for (const auto& d : decls) {
    auto stored = base->tensor(d.name);
    auto delta = trained->find(d.name);
    if (!delta) {
      writer.write(d.name, stored.bytes());
      continue;
    }
    if (delta->info->shape != d.shape)
      fail(trainable_path.string(), ": tensor '", d.name, "' has shape ", shape_to_string(delta->info->shape),
           "; the base has ", shape_to_string(d.shape));
    if (d.dtype == DType::U8 && delta->info->dtype == DType::U8) {  // MXFP4 blocks/scales: the run wrote them as the base stores them
      writer.write(d.name, delta->bytes());
      ++replaced;
      continue;
    }
    if (d.dtype != DType::F32 && d.dtype != DType::F16 && d.dtype != DType::BF16)
      fail(o.base.string(), ": tensor '", d.name, "' is stored as ", dtype_name(d.dtype), "; cannot substitute trained values");
    auto bytes = encode_floats(d.dtype, read_floats(*delta));
    writer.write(d.name, ByteView{bytes.data(), bytes.size()});
    ++replaced;
  }
  const auto remote_code_files = apply_remote_code(config, o.remote_code);
  if (!o.remote_code) std::cerr << note_ignored_by_transformers(config);
  writer.add_file("config.json", config.dump(2) + "\n");
  for (const auto& [name, text] : remote_code_files) writer.add_file(name, text);
  for (const auto& entry : fs::directory_iterator(base->directory())) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (ends_with(name, ".safetensors") || name == "model.safetensors.index.json" || name == "config.json" ||
        is_remote_code_file(name))
      continue;
    writer.copy_file(name, entry.path());
  }
  writer.commit();
  if (drop) {
    const surgery::VerifyResult v = surgery::compare_selection_bias(o.out, dropped);
    std::cout << "drop-selection-bias: removed " << dropped.size() << " selection-bias tensors; max |logit difference| "
              << "with vs without the bias = " << v.max_abs_diff << " over " << v.tokens << " tokens (max |logit| "
              << v.max_abs_logit << ")\n";
  }
  return replaced;
}

}  // namespace moeforge::train
