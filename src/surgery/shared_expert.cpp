// Adding a shared expert to a MoE checkpoint (see shared_expert.h).
#include "surgery/shared_expert.h"

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/plan.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "surgery/surgery_util.h"
#include "surgery/verify.h"

namespace moeforge::surgery {
namespace {

using Role = TensorRole;

// Indices of the k largest values (ties: lower index first).
std::vector<int64_t> top_indices(const std::vector<double>& values, int64_t k) {
  std::vector<int64_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return values[a] > values[b]; });
  idx.resize(std::min<size_t>(static_cast<size_t>(k), idx.size()));
  return idx;
}

// Which experts each layer averages, from --init and the plan.
std::map<int64_t, std::vector<int64_t>> choose_experts(const SharedExpertOptions& o, const ModelSpec& spec) {
  std::map<int64_t, std::vector<int64_t>> chosen;
  const int64_t E = spec.moe.num_experts;
  std::vector<int64_t> all(E);
  std::iota(all.begin(), all.end(), 0);
  using Kind = SharedInit::Kind;
  if (o.init.kind == Kind::Mean || o.init.kind == Kind::Random) {
    for (int64_t l = 0; l < spec.num_layers; ++l)
      if (spec.is_moe[l]) chosen[l] = o.init.kind == Kind::Mean ? all : std::vector<int64_t>{};
    return chosen;
  }
  const std::string init = to_string(o.init);
  int64_t k = 0;
  bool pca = false, global = false;
  switch (o.init.kind) {
    case Kind::Top1: k = 1; break;
    case Kind::Top1Average: k = 1, global = true; break;
    case Kind::Top4Average: k = 4, global = true; break;
    case Kind::PcaTop:
      pca = true;
      k = o.init.k;
      if (k < 1 || k > E) fail("--init ", init, ": K must be in [1, ", E, "]");
      break;
    case Kind::Mean: case Kind::Random: break;
  }
  if (o.plan.empty()) fail("--init ", init, " needs --plan/--stats FILE with per-layer \"usage\" or \"importance\"");
  SurgeryPlan plan = read_plan(o.plan);
  check_plan_matches(plan, spec);
  const auto& scores = pca && !plan.importance.empty() ? plan.importance : plan.usage;
  if (pca && plan.importance.empty())
    std::cerr << "moeforge: note: " << o.plan.string() << " has no \"importance\"; ranking experts by \"usage\"\n";
  if (scores.empty()) fail(o.plan.string(), ": has neither \"usage\" nor \"importance\"");
  std::vector<double> total(E, 0.0);
  for (const auto& [l, v] : scores)
    for (int64_t e = 0; e < E; ++e) total[e] += v[e];
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    if (!spec.is_moe[l]) continue;
    if (global) {
      chosen[l] = top_indices(total, k);
    } else {
      auto it = scores.find(l);
      if (it == scores.end()) fail(o.plan.string(), ": no statistics for MoE layer ", l);
      chosen[l] = top_indices(it->second, k);
    }
  }
  return chosen;
}

// Equal-weight mean of the chosen experts, read (and dequantised) one at a time.
ExpertWeights average_experts(const ModelSpec& spec, const CheckpointStore& store, int64_t l, const std::vector<int64_t>& experts) {
  ExpertWeights sum;
  bool first = true;
  for (int64_t e : experts) {
    ExpertWeights w = read_expert(spec, store, l, e);
    if (first) {
      sum = std::move(w);
      first = false;
      continue;
    }
    for (size_t i = 0; i < w.gate.size(); ++i) sum.gate[i] += w.gate[i];
    for (size_t i = 0; i < w.up.size(); ++i) sum.up[i] += w.up[i];
    for (size_t i = 0; i < w.down.size(); ++i) sum.down[i] += w.down[i];
  }
  // Drop the mapped pages read above from this process, so the resident set stays flat across layers.
  for (const auto& t : expected_tensors(spec))
    if (t.layer == l && t.routed_experts) release_pages(store.tensor(t.name).bytes());
  const float inv = 1.0f / static_cast<float>(experts.size());
  for (auto* v : {&sum.gate, &sum.up, &sum.down})
    for (float& x : *v) x *= inv;
  return sum;
}

}  // namespace

SharedExpertResult add_shared_expert(const SharedExpertOptions& o) {
  auto store = CheckpointStore::open(o.source);
  ModelSpec src = load_model_spec(*store);
  if (!src.has_moe()) fail(o.source.string(), ": is a dense model; add-shared-expert needs a MoE");
  if (src.moe.num_shared_experts > 0) fail(o.source.string(), ": already has a shared expert");
  const FamilyWriter& family = adapter_for(src.model_type, src.source).writer;
  const bool native = family.shared_expert_width_key != nullptr;
  if (native && family.native_shared_gate == SharedGateKind::SigmoidGate && o.gate != SharedGate::Sigmoid)
    fail(src.model_type, "'s native shared expert is sigmoid-gated: use --gate sigmoid (a ", to_string(o.gate),
         " scale has no native form)");
  const int64_t width = o.width > 0 ? o.width : src.moe.moe_intermediate_size;
  if (width != src.moe.moe_intermediate_size && o.init.kind != SharedInit::Kind::Random)
    fail("--width ", width, " differs from the expert width ", src.moe.moe_intermediate_size, "; only --init random can use it");
  std::map<int64_t, std::vector<int64_t>> chosen = choose_experts(o, src);

  nlohmann::json config = store->read_json("config.json");
  if (native) {
    config[family.shared_expert_width_key] = width;
  } else {
    config["moeforge_shared_expert_intermediate_size"] = width;
    config["moeforge_shared_expert_gate"] = to_string(o.gate);
    config["moeforge_shared_expert_scale"] = o.scale;
  }
  ModelSpec out = spec_from_config(config, nullptr, (o.out / "config.json").string());
  out.moe.layout = src.moe.layout;
  // The shared expert's output factor folded into down: sigmoid gates start at 0.5.
  const double fold = o.gate == SharedGate::Sigmoid ? o.scale / 0.5 : 1.0;

  OutputPlan plan;
  for_each_tensor(out, [&](const ExpectedTensor& t) {
    const int64_t l = t.layer;
    if (t.role == Role::SharedGate || t.role == Role::SharedDown) return;  // written with SharedUp
    if (t.role == Role::SharedUp) {
      DType dtype = float_dtype_of(*store, tensor_name(src, Role::Router, l));
      OutputGroup g;
      g.kind = GroupKind::Create;
      const std::vector<int64_t> experts = chosen.at(l);
      g.what = experts.empty() ? cat("layer ", l, " shared expert (random)")
                               : cat("layer ", l, " shared expert = mean of ", experts.size(), " expert(s)");
      const bool gated = spec_has_role(out, Role::SharedGate, l);  // GELU families have no gate projection
      for (Role r : {Role::SharedGate, Role::SharedUp, Role::SharedDown})
        if (spec_has_role(out, r, l)) g.decls.push_back(TensorDecl{tensor_name(out, r, l), dtype, role_shape(out, r)});
      const ModelSpec* s = &src;
      const CheckpointStore* st = store.get();
      const ModelSpec* os = &out;
      const double random_std = o.random_std;
      const uint64_t seed = o.seed;
      g.produce = [=](CheckpointWriter& writer) {
        ExpertWeights w;
        const size_t n = static_cast<size_t>(width * s->hidden_size);
        if (experts.empty()) {
          if (gated) w.gate = normal_floats(n, 0.0, random_std, mix_seed(seed, 0x5a, l, 1));
          w.up = normal_floats(n, 0.0, random_std, mix_seed(seed, 0x5a, l, 2));
          w.down = normal_floats(n, 0.0, random_std, mix_seed(seed, 0x5a, l, 3));
        } else {
          w = average_experts(*s, *st, l, experts);
        }
        for (float& v : w.down) v = static_cast<float>(v * fold);
        if (gated) write_floats(writer, tensor_name(*os, Role::SharedGate, l), dtype, w.gate);
        write_floats(writer, tensor_name(*os, Role::SharedUp, l), dtype, w.up);
        write_floats(writer, tensor_name(*os, Role::SharedDown, l), dtype, w.down);
      };
      plan.add(std::move(g));
      return;
    }
    if (t.role == Role::SharedExpertGate) {
      DType dtype = float_dtype_of(*store, tensor_name(src, Role::Router, l));
      plan.add(float_tensor_group(GroupKind::Create, cat("layer ", l, " shared expert gate (zeros)"), t.name, dtype, t.shape,
                                  [H = src.hidden_size] { return std::vector<float>(H, 0.0f); }));
      return;
    }
    if (t.role == Role::SharedScale) {
      plan.add(float_tensor_group(GroupKind::Create, cat("layer ", l, " shared expert scale"), t.name, DType::F32, t.shape,
                                  [s = o.scale] { return std::vector<float>{static_cast<float>(s)}; }));
      return;
    }
    plan.copy(*store, tensor_name(src, t.role, l, t.expert), t.name);
  });
  plan.config = config;
  plan.side_files = side_files_of(*store);
  plan.card = {"add-shared-expert", store->directory().string(), "a shared expert added beside the routed experts", /*base_id=*/""};
  if (store->has_file("moeforge_grow.json")) plan.side_files.push_back(store->directory() / "moeforge_grow.json");

  SharedExpertResult result;
  result.written = execute(plan, o.out, o.execute);
  if (result.written.empty()) return result;
  if (!o.execute.quiet)
    std::cout << "added a shared expert (init " << to_string(o.init) << ", width " << width << ", gate " << to_string(o.gate) << ", scale " << o.scale
              << (native ? ", native qwen2_moe" : ", moeforge extension") << ") to " << src.num_moe_layers()
              << " MoE layers; wrote " << result.written.string() << "\n";
  if (o.verify) {
    VerifyResult v = compare_models(o.source, result.written, VerifyOptions{3, 32, o.seed});
    result.max_logit_diff = v.max_abs_diff;
    std::cout << "verify: max |logit difference| original vs with shared expert = " << v.max_abs_diff << " over "
              << v.tokens << " tokens\n";
  }
  return result;
}

}  // namespace moeforge::surgery
