// Growing a MoE by expert clones (see grow.h).
#include "surgery/grow.h"

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "arch/plan.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"
#include "surgery/surgery_util.h"
#include "surgery/verify.h"

namespace moeforge::surgery {
namespace {

using Role = TensorRole;

bool is_fused_role(Role r) { return r >= Role::ExpertsGateUp && r <= Role::ExpertsDownScales; }

// [E, ...] -> [E + n, ...]: the original bytes, then each clone's slice, streamed (no decoding).
OutputGroup concat_group(const CheckpointStore& store, const std::string& name, const std::vector<int64_t>& clones, int64_t l) {
  StoredTensor t = store.tensor(name);
  OutputGroup g;
  g.kind = GroupKind::Transform;
  g.what = cat("layer ", l, " ", name.substr(name.rfind('.') + 1), " + ", clones.size(), " clone(s)");
  std::vector<int64_t> shape = t.info->shape;
  const int64_t E = shape[0];
  shape[0] += static_cast<int64_t>(clones.size());
  g.decls.push_back(TensorDecl{name, t.info->dtype, shape});
  g.bytes_read = t.info->num_bytes();
  const CheckpointStore* s = &store;
  g.produce = [s, name, clones, E](CheckpointWriter& writer) {
    StoredTensor t = s->tensor(name);
    const uint64_t per = t.info->num_bytes() / static_cast<uint64_t>(E);
    std::vector<FileRange> parts{file_range(t)};
    for (int64_t c : clones) parts.push_back(file_range(t, static_cast<uint64_t>(c) * per, per));
    write_streamed_copy(writer, name, parts);
  };
  return g;
}

std::vector<float> floats_of(const CheckpointStore& store, const std::string& name) { return read_floats(store.tensor(name)); }

}  // namespace

std::map<int64_t, std::vector<int64_t>> parse_clone_list(const std::string& text, const std::vector<bool>& is_moe) {
  std::map<int64_t, std::vector<int64_t>> out;
  for (const std::string& item : split(text, ',')) {
    auto colon = item.find(':');
    if (colon == std::string::npos) fail("--clone: '", item, "' is not LAYER:EXPERT");
    auto number = [&](const std::string& s) -> int64_t {
      try {
        size_t used = 0;
        int64_t v = std::stoll(s, &used);
        if (used == s.size()) return v;
      } catch (const std::exception&) {
      }
      fail("--clone: '", s, "' in '", item, "' is not an integer");
    };
    const std::string layer = item.substr(0, colon);
    const int64_t expert = number(item.substr(colon + 1));
    if (layer == "*") {
      for (size_t l = 0; l < is_moe.size(); ++l)
        if (is_moe[l]) out[static_cast<int64_t>(l)].push_back(expert);
      continue;
    }
    int64_t l = number(layer);
    if (l < 0 || l >= static_cast<int64_t>(is_moe.size()) || !is_moe[l])
      fail("--clone: layer ", l, " is not a MoE layer of the model");
    out[l].push_back(expert);
  }
  return out;
}

namespace {

// The clone sources per MoE layer (from --clone or the plan), checked: every MoE layer gets the
// same number (config.json has one num_experts) of experts that exist.
std::map<int64_t, std::vector<int64_t>> resolve_clones(const GrowOptions& o, const ModelSpec& src, int64_t& added) {
  if (o.clone.empty() == o.plan.empty()) fail("give exactly one of --clone or --plan");
  std::map<int64_t, std::vector<int64_t>> clones;
  if (!o.plan.empty()) {
    SurgeryPlan plan = read_plan(o.plan);
    check_plan_matches(plan, src);
    if (plan.clone.empty()) fail(o.plan.string(), ": has no \"clone\" entries");
    clones = plan.clone;
  } else {
    clones = parse_clone_list(o.clone, src.is_moe);
  }
  const int64_t E = src.moe.num_experts;
  added = -1;
  for (int64_t l = 0; l < src.num_layers; ++l) {
    if (!src.is_moe[l]) continue;
    auto it = clones.find(l);
    const int64_t n = it == clones.end() ? 0 : static_cast<int64_t>(it->second.size());
    if (added >= 0 && n != added)
      fail("every MoE layer must get the same number of clones (config.json has one num_experts): layer ", l, " gets ", n,
           ", an earlier layer ", added, "; use '*:E' or list each layer");
    added = n;
    if (it != clones.end())
      for (int64_t e : it->second)
        if (e < 0 || e >= E) fail("layer ", l, ": unknown expert ", e, "; the model has experts 0..", E - 1);
  }
  if (added <= 0) fail("nothing to clone");
  return clones;
}

// The output config.json: the experts count raised, the selection-bias key where one is added.
nlohmann::json grown_config(const GrowOptions& o, const ModelSpec& src, const CheckpointStore& store, int64_t added) {
  const int64_t E = src.moe.num_experts;
  nlohmann::json config = store.read_json("config.json");
  bool counted = false;
  for (const char* key : {"num_local_experts", "num_experts"})
    if (config.contains(key) && config[key].is_number_integer()) config[key] = E + added, counted = true;
  if (!counted) {
    const char* key = adapter_for(src.model_type, src.source).writer.experts_count_key;
    if (!key) fail(o.source.string(), ": ", src.model_type, " has no experts-count config key to grow");
    config[key] = E + added;
  }
  const bool selection = src.moe.score_correction_bias || !o.router_bias.empty();
  if (selection && !src.moe.score_correction_bias) config["moeforge_selection_bias"] = true;
  if (o.dequantize) config.erase("quantization_config");
  return config;
}

// The widened router of layer l: the old rows, then one row per clone (its source's row plus
// N(0, (noise * rms(row))^2)).
OutputGroup router_rows_group(const GrowOptions& o, const ModelSpec& src, const CheckpointStore& store, const ExpectedTensor& t,
                              const std::vector<int64_t>& layer_clones) {
  const int64_t l = t.layer;
  const std::string name = tensor_name(src, Role::Router, l);
  const int64_t H = src.hidden_size;
  const uint64_t seed = o.seed;
  const double noise = o.router_noise;
  const CheckpointStore* s = &store;
  return float_tensor_group(GroupKind::Transform, cat("layer ", l, " router + ", layer_clones.size(), " row(s)"), t.name,
                            float_dtype_of(store, name), t.shape, [s, name, layer_clones, H, seed, noise, l] {
                              std::vector<float> rows = floats_of(*s, name);
                              for (size_t i = 0; i < layer_clones.size(); ++i) {
                                const int64_t c = layer_clones[i];
                                std::vector<float> row(rows.begin() + c * H, rows.begin() + (c + 1) * H);
                                double sq = 0;
                                for (float v : row) sq += static_cast<double>(v) * v;
                                auto z = normal_floats(H, 0.0, noise * std::sqrt(sq / H), mix_seed(seed, 0x960, l, i));
                                for (int64_t h = 0; h < H; ++h) row[h] += z[h];
                                rows.insert(rows.end(), row.begin(), row.end());
                              }
                              return rows;
                            });
}

// The router bias (GPT-OSS) or the selection bias of layer l, widened: each clone copies its
// source's entry; with `split`, a source and its m clones take bias - log(m + 1) each; the
// selection bias gets --router-bias added to the old experts' or the clones' entries.
OutputGroup bias_group(const GrowOptions& o, const ModelSpec& src, const CheckpointStore& store, const ExpectedTensor& t,
                       const std::vector<int64_t>& layer_clones, bool split) {
  const int64_t l = t.layer, E = src.moe.num_experts;
  const bool router_bias = t.role == Role::RouterBias;
  const bool had = spec_has_role(src, t.role, l);
  const std::string name = had ? tensor_name(src, t.role, l) : "";
  DType dtype = had ? float_dtype_of(store, name) : float_dtype_of(store, tensor_name(src, Role::Router, l));
  const CheckpointStore* s = &store;
  const SelectionBiasSpec extra = o.router_bias;
  return float_tensor_group(
      GroupKind::Transform, cat("layer ", l, " ", router_bias ? "router bias" : "selection bias"), t.name, dtype, t.shape,
      [=] {
        std::vector<float> b = had ? floats_of(*s, name) : std::vector<float>(E, 0.0f);
        for (int64_t c : layer_clones) b.push_back(b[c]);
        if (router_bias && split) {  // source + its m clones: bias - log(m + 1) each
          std::map<int64_t, int64_t> copies;
          for (int64_t c : layer_clones) copies[c]++;
          for (size_t i = 0; i < layer_clones.size(); ++i)
            b[E + i] -= static_cast<float>(std::log(copies[layer_clones[i]] + 1.0));
          for (auto [c, m] : copies) b[c] -= static_cast<float>(std::log(m + 1.0));
        }
        if (!router_bias && !extra.empty())
          for (int64_t e = 0; e < static_cast<int64_t>(b.size()); ++e)
            if ((extra.target == SelectionBiasSpec::Target::Old) == (e < E)) b[e] += static_cast<float>(extra.value);
        return b;
      });
}

// Layer l's fused experts decoded from MXFP4 and re-encoded as bf16, clones appended.
OutputGroup dequantized_experts_group(const ModelSpec& src, const ModelSpec& out, const CheckpointStore& store, int64_t l,
                                      const std::vector<int64_t>& layer_clones) {
  const int64_t E = src.moe.num_experts;
  const int64_t added = static_cast<int64_t>(layer_clones.size());
  std::vector<ExpertSource> sources;
  for (int64_t e = 0; e < E + added; ++e) sources.push_back(ExpertSource::copy_of(src, store, l, e < E ? e : layer_clones[e - E]));
  OutputGroup g;
  g.kind = GroupKind::Transform;
  g.what = cat("layer ", l, " experts dequantised + ", added, " clone(s)");
  for (Role r : {Role::ExpertsGateUp, Role::ExpertsDown, Role::ExpertsGateUpBias, Role::ExpertsDownBias})
    if (spec_has_role(out, r, l)) g.decls.push_back(TensorDecl{tensor_name(out, r, l), DType::BF16, role_shape(out, r)});
  const ModelSpec* out_spec = &out;
  g.produce = [out_spec, l, sources](CheckpointWriter& writer) {
    for (auto& t : encode_layer_experts(*out_spec, l, sources, DType::BF16))
      writer.write(t.decl.name, ByteView{t.bytes.data(), t.bytes.size()});
  };
  return g;
}

// moeforge_grow.json: which new index cloned which source (training's new_experts selector).
nlohmann::json grow_record(const GrowOptions& o, const ModelSpec& out, const std::map<int64_t, std::vector<int64_t>>& clones,
                           int64_t E, int64_t added, bool split) {
  nlohmann::json record = {
      {"version", 1},
      {"source", o.source.string()},
      {"model", identity_json(identity_of(out))},
      {"num_experts_before", E},
      {"num_experts_after", E + added},
      {"router_offset", split ? "split" : "none"},
      {"router_noise", o.router_noise},
      {"selection_bias", o.router_bias.empty() ? nlohmann::json(nullptr) : nlohmann::json(to_string(o.router_bias))}};
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [l, list] : clones) {
    nlohmann::json entries = nlohmann::json::array();
    for (size_t i = 0; i < list.size(); ++i) entries.push_back({{"index", E + static_cast<int64_t>(i)}, {"source", list[i]}});
    layers[std::to_string(l)] = entries;
  }
  record["layers"] = layers;
  return record;
}

}  // namespace

GrowResult grow(const GrowOptions& o) {
  auto store = CheckpointStore::open(o.source);
  ModelSpec src = load_model_spec(*store);
  if (!src.has_moe()) fail(o.source.string(), ": is a dense model; use `moeforge upcycle`");
  int64_t added = 0;
  const std::map<int64_t, std::vector<int64_t>> clones = resolve_clones(o, src, added);
  const int64_t E = src.moe.num_experts;
  if (o.offset == CloneOffset::Split && !src.moe.router_bias)
    fail("--offset split: ", src.model_type, " routers have no bias to carry the -log(m+1) offset; use --offset none");
  if (o.dequantize && src.moe.layout != ExpertLayout::Mxfp4) fail("--dequantize: the experts are not MXFP4");

  const nlohmann::json config = grown_config(o, src, *store, added);
  ModelSpec out = spec_from_config(config, nullptr, (o.out / "config.json").string());
  out.moe.layout = o.dequantize ? ExpertLayout::FusedInterleaved : src.moe.layout;
  const bool split = o.offset != CloneOffset::None && src.moe.router_bias;

  OutputPlan plan;
  std::map<int64_t, bool> dequantized;
  for_each_tensor(out, [&](const ExpectedTensor& t) {
    const int64_t l = t.layer;
    const std::vector<int64_t> layer_clones = l >= 0 && clones.count(l) ? clones.at(l) : std::vector<int64_t>{};
    if (t.role == Role::Router) {
      plan.add(router_rows_group(o, src, *store, t, layer_clones));
    } else if (t.role == Role::RouterBias || t.role == Role::ScoreCorrectionBias) {
      plan.add(bias_group(o, src, *store, t, layer_clones, split));
    } else if (role_is_per_expert(t.role)) {
      const int64_t from = t.expert < E ? t.expert : layer_clones.at(t.expert - E);
      plan.copy(*store, tensor_name(src, t.role, l, from), t.name);
    } else if (is_fused_role(t.role) && !o.dequantize) {
      plan.add(concat_group(*store, t.name, layer_clones, l));
    } else if (is_fused_role(t.role)) {
      if (!dequantized[l]) plan.add(dequantized_experts_group(src, out, *store, l, layer_clones));
      dequantized[l] = true;
    } else {
      plan.copy(*store, tensor_name(src, t.role, l), t.name);
    }
  });
  plan.config = config;
  plan.side_files = side_files_of(*store);
  plan.card = {"grow", store->directory().string(), "experts cloned into new ones and the router widened for them", /*base_id=*/""};
  plan.extra_files["moeforge_grow.json"] = grow_record(o, out, clones, E, added, split).dump(2) + "\n";

  GrowResult result;
  result.experts_before = E;
  result.experts_after = E + added;
  result.written = execute(plan, o.out, o.execute);
  if (result.written.empty()) return result;
  if (!o.execute.quiet)
    std::cout << "grew " << src.model_type << " from " << E << " to " << E + added << " experts per MoE layer; wrote "
              << result.written.string() << " (clone record: moeforge_grow.json)\n";
  if (o.verify) {
    VerifyResult v = compare_models(o.source, result.written, VerifyOptions{3, 32, o.seed});
    result.max_logit_diff = v.max_abs_diff;
    std::cout << "grow: max |logit difference| original vs grown = " << v.max_abs_diff << " over " << v.tokens
              << " tokens (max |logit| " << v.max_abs_logit << ")\n";
  }
  return result;
}

}  // namespace moeforge::surgery
