// Upcycling a dense checkpoint into a MoE one (see upcycle.h).
#include "surgery/upcycle.h"

#include <iostream>

#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "surgery/dense_to_moe.h"
#include "surgery/expert_init.h"
#include "surgery/router_init.h"
#include "surgery/moe_target.h"
#include "surgery/surgery_util.h"
#include "surgery/verify.h"

namespace moeforge::surgery {

UpcycleResult upcycle(const UpcycleOptions& o) {
  auto store = CheckpointStore::open(o.source);
  ModelSpec dense = load_model_spec(*store);
  const bool granular = o.method == UpcycleMethod::Granular;
  if (router_needs_prompts(o.router) && o.prompts.empty()) fail("--router ", to_string(o.router), " needs --prompts FILE");
  const int64_t G = granular ? o.granularity : 1;
  if (granular && G < 2) fail("--method granular needs --granularity G >= 2");
  if (G > 1 && o.num_experts % G != 0) fail("--experts ", o.num_experts, " must be a multiple of --granularity ", G);
  if (G > 1 && dense.intermediate_size % G != 0)
    fail("--granularity ", G, " does not divide the FFN width ", dense.intermediate_size);
  if (o.method == UpcycleMethod::Drop && (o.drop_ratio < 0 || o.drop_ratio > 1)) fail("--drop-ratio must be in [0, 1]");

  MoeTargetOptions target;
  target.family = o.to;
  target.num_experts = o.num_experts;
  target.top_k = o.top_k;
  target.expert_width = dense.intermediate_size / G;
  target.renormalize = o.renormalize;
  target.moe_layers = parse_layer_list(o.layers, dense.num_layers, "--layers");
  nlohmann::json config = moe_target_config(store->read_json("config.json"), dense, target);
  ModelSpec out = spec_from_config(config, nullptr, (o.out / "config.json").string());
  for (const auto& w : check_target(dense, out)) std::cerr << "moeforge: warning: " << w << "\n";

  // Output scale that keeps `copy` + zero router exact: with renormalisation the k weights are 1/k
  // each (sum 1); without, each is 1/E (sum k/E) so the experts are scaled by E/k. Granular slices
  // are scaled by G: exact when every slice is active (k = E), since each slice appears E/G times.
  double scale = (o.renormalize ? 1.0 : static_cast<double>(o.num_experts) / o.top_k) * static_cast<double>(G);

  std::map<int64_t, std::vector<float>> router_rows;
  if (!o.execute.dry_run) {
    std::vector<ExpertPrompts> prompts;
    if (router_needs_prompts(o.router)) prompts = read_prompts_file(o.prompts, o.source, {}, o.num_experts);
    router_rows = initial_router_rows({o.router, o.router_std, o.seed}, dense, *store, target.moe_layers, o.num_experts, prompts);
  }

  DenseToMoe job;
  job.base = store.get();
  job.base_spec = dense;
  job.out_spec = out;
  job.experts = [&](int64_t l, const std::function<void(int64_t, const ExpertWeights&)>& emit) {
    const ExpertWeights mlp = read_dense_mlp(dense, *store, l);
    const MatrixStats stats = matrix_stats(mlp);
    for (int64_t e = 0; e < o.num_experts; ++e) {
      ExpertWeights w = G > 1 ? granular_slice(mlp, e % G, G) : mlp;
      const uint64_t seed = mix_seed(o.seed, 0x5eed, static_cast<uint64_t>(l), static_cast<uint64_t>(e));
      if (o.method == UpcycleMethod::Noise) add_relative_noise(w, o.noise_std, seed);
      if (o.method == UpcycleMethod::Drop) drop_upcycle(w, o.drop_ratio, stats, seed);
      scale_output(w, scale);
      emit(e, w);
    }
  };
  job.router = [&](int64_t l) { return router_rows.at(l); };
  OutputPlan plan = build_dense_to_moe_plan(job);
  plan.config = config;
  plan.side_files = side_files_of(*store);
  plan.card = {"upcycle", store->directory().string(), "its dense FFNs upcycled into routed experts", /*base_id=*/""};
  UpcycleResult result;
  result.written = execute(plan, o.out, o.execute);
  if (!result.written.empty() && !o.execute.quiet)
    std::cout << "upcycled " << dense.model_type << " -> " << o.to << ": " << o.num_experts << " experts, top-" << o.top_k
              << ", " << target.moe_layers.size() << " MoE layers, method " << to_string(o.method) << ", router " << to_string(o.router)
              << "; wrote " << result.written.string() << "\n";
  if (o.verify && !result.written.empty()) {
    VerifyResult v = compare_models(o.source, result.written, VerifyOptions{3, 32, o.seed});
    result.max_logit_diff = v.max_abs_diff;
    std::cout << "verify: max |logit difference| dense vs upcycled = " << v.max_abs_diff << " over " << v.tokens
              << " tokens (max |logit| " << v.max_abs_logit << ")\n";
  }
  return result;
}

}  // namespace moeforge::surgery
