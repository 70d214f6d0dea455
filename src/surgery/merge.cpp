// Merging dense models into one MoE (see merge.h).
#include "surgery/merge.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"
#include "surgery/dense_to_moe.h"
#include "surgery/router_init.h"
#include "surgery/moe_target.h"
#include "surgery/surgery_util.h"

namespace moeforge::surgery {
namespace {

struct Source {
  std::string name;
  std::shared_ptr<CheckpointStore> store;
  ModelSpec spec;
};

// Throws naming both config files and the first field (or tensor shape) that differs.
void check_same_architecture(const Source& base, const Source& other) {
  const ModelSpec& a = base.spec;
  const ModelSpec& b = other.spec;
  auto bad = [&](const std::string& field, const std::string& va, const std::string& vb) {
    fail("expert '", other.name, "' does not match the base: ", field, " is ", va, " in ", a.source, " but ", vb, " in ",
         b.source);
  };
  if (a.model_type != b.model_type) bad("model_type", a.model_type, b.model_type);
  const std::pair<const char*, std::pair<int64_t, int64_t>> fields[] = {
      {"num_hidden_layers", {a.num_layers, b.num_layers}}, {"hidden_size", {a.hidden_size, b.hidden_size}},
      {"intermediate_size", {a.intermediate_size, b.intermediate_size}}, {"num_attention_heads", {a.num_heads, b.num_heads}},
      {"num_key_value_heads", {a.num_kv_heads, b.num_kv_heads}}, {"head_dim", {a.head_dim, b.head_dim}},
      {"vocab_size", {a.vocab_size, b.vocab_size}}};
  for (const auto& [field, values] : fields)
    if (values.first != values.second) bad(field, std::to_string(values.first), std::to_string(values.second));
  if (a.qkv_bias != b.qkv_bias) bad("q/k/v bias", a.qkv_bias ? "on" : "off", b.qkv_bias ? "on" : "off");
  if (a.tie_word_embeddings != b.tie_word_embeddings) bad("tie_word_embeddings", a.tie_word_embeddings ? "true" : "false", b.tie_word_embeddings ? "true" : "false");
  if (a.sliding_window != b.sliding_window) bad("the sliding windows", "one layout", "another");
  if (a.rope.theta != b.rope.theta) bad("rope_theta", std::to_string(a.rope.theta), std::to_string(b.rope.theta));
  for (const auto& t : expected_tensors(a)) {
    auto x = base.store->tensor(t.name);
    auto y = other.store->find(t.name);
    if (!y) fail("expert '", other.name, "': missing tensor '", t.name, "' in ", other.store->directory().string());
    if (x.info->shape != y->info->shape)
      fail("expert '", other.name, "': tensor '", t.name, "' is ", shape_to_string(x.info->shape), " in ",
           base.store->directory().string(), " but ", shape_to_string(y->info->shape), " in ", other.store->directory().string());
  }
}

}  // namespace

std::filesystem::path merge(const MergeOptions& o) {
  if (o.experts.empty()) fail("merge needs at least one --expert NAME=DIR");
  const RouterInit router = o.router.value_or(o.prompts.empty() && o.expert_prompts.empty() ? RouterInit::Normal : RouterInit::Hidden);
  if (router_needs_prompts(router) && o.prompts.empty() && o.expert_prompts.empty())
    fail("--router ", to_string(router), " needs --prompts FILE");
  Source base{"base", CheckpointStore::open(o.base), {}};
  base.spec = load_model_spec(*base.store);
  std::vector<Source> sources;
  std::vector<std::string> names;
  for (const auto& [name, dir] : o.experts) {
    if (name.empty()) fail("--expert: '", dir.string(), "' needs a NAME= prefix");
    if (std::find(names.begin(), names.end(), name) != names.end()) fail("--expert: name '", name, "' given twice");
    Source s{name, CheckpointStore::open(dir), {}};
    s.spec = load_model_spec(*s.store);
    check_same_architecture(base, s);
    names.push_back(name);
    sources.push_back(std::move(s));
  }
  const ModelSpec& dense = base.spec;
  const int64_t E = static_cast<int64_t>(sources.size());
  for (const auto* per_expert : {&o.noise_scale, &o.residual_scale})
    if (!per_expert->empty() && static_cast<int64_t>(per_expert->size()) != E) fail("merge: per-expert scales for ", per_expert->size(), " of ", E, " experts");
  MoeTargetOptions target;
  const FamilyAdapter* base_family = find_adapter(dense.model_type);
  const std::string to = !o.to.empty() ? o.to
                         : base_family && base_family->writer.upcycle_only_to ? base_family->writer.upcycle_only_to
                                                                              : "mixtral";
  target.family = to;
  target.num_experts = E;
  target.top_k = o.top_k;
  target.expert_width = dense.intermediate_size;
  target.renormalize = o.renormalize;
  for (int64_t l = 0; l < dense.num_layers; ++l) target.moe_layers.push_back(l);
  target.shared_expert_width = o.shared_expert ? dense.intermediate_size : 0;
  nlohmann::json config = moe_target_config(base.store->read_json("config.json"), dense, target);
  ModelSpec out = spec_from_config(config, nullptr, (o.out / "config.json").string());
  for (const auto& w : check_target(dense, out)) std::cerr << "moeforge: warning: " << w << "\n";
  const double scale = o.renormalize ? 1.0 : static_cast<double>(E) / o.top_k;

  std::map<int64_t, std::vector<float>> router_rows;
  if (!o.execute.dry_run) {
    std::vector<ExpertPrompts> prompts = o.expert_prompts;
    if (router_needs_prompts(router) && prompts.empty()) prompts = read_prompts_file(o.prompts, o.base, names, E);
    router_rows = initial_router_rows({router, o.router_std, o.seed}, dense, *base.store, target.moe_layers, E, prompts);
  }
  DenseToMoe job;
  job.base = base.store.get();
  job.base_spec = dense;
  job.out_spec = out;
  job.experts = [&](int64_t l, const std::function<void(int64_t, const ExpertWeights&)>& emit) {
    for (int64_t e = 0; e < E; ++e) {
      ExpertWeights w = read_dense_mlp(sources[e].spec, *sources[e].store, l);
      if (!o.noise_scale.empty() && o.noise_scale[e] > 0) {
        int which = 0;
        for (std::vector<float>* m : {&w.gate, &w.up, &w.down}) {
          const auto noise = normal_floats(m->size(), 0.0, o.noise_scale[e],
                                           mix_seed(o.seed, 0x4015e, static_cast<uint64_t>(l), static_cast<uint64_t>(e * 3 + which++)));
          for (size_t i = 0; i < m->size(); ++i) (*m)[i] += noise[i];
        }
      }
      const double down_scale = scale * (o.residual_scale.empty() ? 1.0 : o.residual_scale[e]);
      for (float& v : w.down) v = static_cast<float>(v * down_scale);
      emit(e, w);
    }
  };
  job.router = [&](int64_t l) { return router_rows.at(l); };
  job.shared = [&](int64_t l) { return read_dense_mlp(dense, *base.store, l); };
  if (o.non_ffn == NonFfnSource::Average) {
    job.non_ffn = [&](const ExpectedTensor& t, const std::string& base_name, OutputPlan& plan) {
      StoredTensor bt = base.store->tensor(base_name);
      const DType dtype = bt.info->dtype;
      uint64_t read = bt.info->num_bytes() * static_cast<uint64_t>(E);
      plan.add(float_tensor_group(GroupKind::Transform, cat(base_name, " (mean of ", E, ")"), t.name, dtype, t.shape,
                                  [&sources, base_name] {
                                    std::vector<float> sum;
                                    for (const auto& s : sources) {
                                      std::vector<float> v = read_floats(s.store->tensor(base_name));
                                      if (sum.empty()) sum.assign(v.size(), 0.0f);
                                      for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
                                    }
                                    for (float& x : sum) x /= static_cast<float>(sources.size());
                                    return sum;
                                  },
                                  read));
      return true;
    };
  }
  OutputPlan plan = build_dense_to_moe_plan(job);
  plan.config = config;
  plan.side_files = side_files_of(*base.store);
  plan.card = {"merge", base.store->directory().string(), "dense models merged into one MoE, their FFNs as the experts", /*base_id=*/""};
  nlohmann::json record = {{"version", 1}, {"base", o.base.string()}, {"non_ffn", to_string(o.non_ffn)},
                           {"router", to_string(router)}};
  for (int64_t e = 0; e < E; ++e) record["experts"].push_back({{"index", e}, {"name", names[e]}, {"source", o.experts[e].second.string()}});
  plan.extra_files["moeforge_merge.json"] = record.dump(2) + "\n";
  std::filesystem::path written = execute(plan, o.out, o.execute);
  if (!written.empty() && !o.execute.quiet)
    std::cout << "merged " << E << " " << dense.model_type << " models into " << to << " (top-" << o.top_k << ", non-FFN "
              << to_string(o.non_ffn) << ", router " << to_string(router) << "); wrote " << written.string() << "\n";
  return written;
}

}  // namespace moeforge::surgery
