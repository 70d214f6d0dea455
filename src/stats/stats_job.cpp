// The `moeforge stats` job: sample selection, the forward loop with collection, optional loss
// ablations, and the atomic write of STATS_DIR (see stats_job.h).
#include "stats/stats_job.h"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/progress.h"
#include "common/remove_tree.h"
#include "arch/family_adapter.h"
#include "data/dataset.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "io/stale_temps.h"
#include "model/transformer.h"
#include "dist/world.h"
#include "stats/calibration.h"
#include "stats/loss_delta.h"
#include "stats/prob_dump.h"
#include "stats/stats_collector.h"

namespace moeforge::stats {
namespace {

namespace fs = std::filesystem;

// Block order: seeded epoch order, or the calibrated choice from its first `pool` blocks.
std::vector<uint32_t> sample_order(const data::Dataset& ds, const StatsOptions& o, RouterStats& stats) {
  std::vector<uint32_t> order = ds.epoch_order(data::Split::Train, 0, o.seed, true);
  if (!o.calibrate) return order;
  const int64_t needed = (o.tokens + o.block_size - 1) / o.block_size;
  size_t pool = o.calibrate_pool > 0 ? static_cast<size_t>(o.calibrate_pool) : static_cast<size_t>(std::max<int64_t>(8 * needed, 256));
  pool = std::min(pool, order.size());
  std::vector<std::vector<int32_t>> candidates;
  for (size_t i = 0; i < pool; ++i) {
    data::Block b = ds.block(data::Split::Train, order[i]);
    candidates.emplace_back(b.ids.begin(), b.ids.begin() + b.num_real);
  }
  CalibrationResult chosen = select_calibration(candidates, o.tokens);
  std::vector<uint32_t> out;
  for (size_t i : chosen.chosen) out.push_back(order[i]);
  stats.calibrated = true;
  stats.calibration_kl = chosen.kl;
  return out;
}

void write_moments(const fs::path& file, const RouterStats& stats, const StatsCollector& collector) {
  std::vector<std::pair<TensorDecl, std::string>> tensors;
  const auto moments = collector.moments();
  const int64_t E = stats.num_experts;
  for (size_t i = 0; i < moments.size(); ++i) {
    const auto& [sum, outer] = moments[i];
    const std::string prefix = "layers." + std::to_string(stats.layers[i].layer) + ".";
    tensors.push_back({{prefix + "prob_sum", DType::F64, {E}}, std::string(reinterpret_cast<const char*>(sum.data_ptr<double>()), E * 8)});
    tensors.push_back({{prefix + "prob_outer", DType::F64, {E, E}},
                       std::string(reinterpret_cast<const char*>(outer.data_ptr<double>()), E * E * 8)});
  }
  write_file_atomic(file, serialize_safetensors(tensors, {{"format", "pt"}, {"num_tokens", std::to_string(stats.tokens)}}));
}

}  // namespace

RouterStats run_stats(const StatsOptions& o) {
  if (o.tokens < 1) fail("--tokens must be positive");
  if (o.batch_size < 1 || o.block_size < 2) fail("--batch-size must be >= 1 and --block-size >= 2");
  if (fs::exists(o.out) && !fs::is_empty(o.out) && !o.overwrite)
    fail(o.out.string(), ": already exists; pass --overwrite to replace it");
  torch::NoGradGuard no_grad;
  // Inputs before weights: the config, the data and the tokenizer fail fast, before any weight is read.
  const ModelSpec spec0 = load_model_spec(*CheckpointStore::open(o.model));
  if (!spec0.has_moe()) fail(o.model.string(), ": is a dense model; stats needs a MoE model");
  check_sequence_length(spec0, o.block_size, "stats: --block-size", o.allow_long_seq);
  data::DataOptions data_options;
  data_options.block_size = o.block_size;
  data_options.validation_fraction = 0.0;  // the whole data is the population
  data_options.seed = o.seed;
  data_options.max_bad_fraction = o.max_bad_fraction;
  dist::World one_process;
  dist::World& world = o.world ? *o.world : one_process;
  if (o.dump_probs && world.distributed()) fail("stats: --dump-probs runs in one process (drop --nproc or the launcher)");
  // Rank 0 fills the token cache, the others read it.
  auto ds = world.main_first([&] { return data::Dataset::open(o.data, o.tokenizer.empty() ? o.model : o.tokenizer, data_options); });
  auto model = model::Transformer::load(o.model, o.load);
  const ModelSpec& spec = model->spec();
  RouterStats stats;
  stats.model_path = o.model.string();
  stats.model_type = spec.model_type;
  stats.num_layers = spec.num_layers;
  stats.num_experts = spec.moe.num_experts;
  stats.hidden_size = spec.hidden_size;
  stats.top_k = spec.moe.top_k;
  stats.data_spec = o.data;
  stats.block_size = o.block_size;
  stats.entropy_bins = o.entropy_bins;
  stats.collected = !o.forward_only;
  std::vector<int64_t> moe_layers;
  for (int64_t l = 0; l < spec.num_layers; ++l)
    if (spec.is_moe[l]) moe_layers.push_back(l);

  stats.domains = ds.domains();
  stats.domain_tokens.assign(stats.domains.size(), 0);
  const std::vector<uint32_t> order = sample_order(ds, o, stats);
  if (order.empty()) fail(o.data, ": no blocks to run");

  const int64_t E = stats.num_experts, T = o.block_size, D = static_cast<int64_t>(stats.domains.size());
  CollectorOptions co;
  co.num_experts = E;
  co.num_domains = D;
  co.entropy_bins = o.entropy_bins;
  StatsCollector collector(moe_layers, co, model->device());
  std::unique_ptr<ProbDump> dump;
  if (o.dump_probs && !o.forward_only)
    dump = std::make_unique<ProbDump>(static_cast<int64_t>(moe_layers.size()), E, o.tokens);
  std::vector<LossSample> loss_sample;
  int64_t loss_tokens = 0;

  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  Progress progress("stats", o.tokens, "tokens", o.progress && world.is_main());
  size_t next = 0;
  int64_t batch_index = 0;  // every rank plans every batch (cheap); rank i mod N runs batch i
  // Stats read the routing only: no LM head (with streaming, its pages are never read either).
  model::ForwardOptions forward_options;
  forward_options.hidden_only = true;
  struct PlannedBatch {
    std::vector<int64_t> ids;  // [B * T]
    int64_t B = 0, counted = 0;  // rows; tokens counted once this batch is done
    std::vector<int64_t> rows, row_domain;
    std::vector<int32_t> token_ids, token_domain;
  };
  std::vector<PlannedBatch> group;  // this rank's batches waiting to run (more than one only when streaming)
  // Streamed: groups of batches run as one (each layer read once per group).
  const int64_t group_tokens = model->layer_major_group_tokens(o.layer_major_bytes);
  if (group_tokens > o.batch_size * T && world.is_main())
    std::cerr << "moeforge: note: streaming: batches run layer-major in groups of up to " << group_tokens
              << " tokens (each layer is read once per group)\n";
  int64_t group_rows = 0;
  auto run_group = [&] {
    if (group.empty()) return;
    std::vector<torch::Tensor> ids_list;
    for (auto& g : group) ids_list.push_back(torch::from_blob(g.ids.data(), {g.B, T}, torch::kInt64).to(model->device()));
    std::vector<model::ForwardOutput> outs;
    if (group.size() == 1) outs.push_back(model->forward(ids_list[0], forward_options));
    else outs = model->forward_layer_major(ids_list, forward_options);
    for (size_t i = 0; i < group.size(); ++i) {
      const PlannedBatch& g = group[i];
      if (!o.forward_only) {
        const auto collect_start = std::chrono::steady_clock::now();
        auto rows_V = torch::tensor(g.rows, torch::kInt64).to(model->device());
        auto domain_V = torch::tensor(g.row_domain, torch::kInt64).to(model->device());
        auto probs_VLE = collector.add(outs[i].routing, rows_V, domain_V, dump != nullptr);
        if (dump) dump->append(probs_VLE, g.token_ids, g.token_domain);
        stats.collect_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - collect_start).count();
      }
      outs[i] = model::ForwardOutput();
      progress.update(g.counted);
    }
    group.clear();
    group_rows = 0;
  };
  while (stats.tokens < o.tokens && next < order.size()) {
    PlannedBatch g;
    g.ids.assign(static_cast<size_t>(o.batch_size * T), 0);
    int64_t B = 0, counted = stats.tokens;
    for (; B < o.batch_size && next < order.size() && counted < o.tokens; ++B, ++next) {
      data::Block block = ds.block(data::Split::Train, order[next]);
      const int64_t take = std::min<int64_t>(block.num_real, o.tokens - counted);
      for (int64_t t = 0; t < T; ++t) g.ids[static_cast<size_t>(B * T + t)] = block.ids[static_cast<size_t>(t)];
      for (int64_t t = 0; t < take; ++t) {
        g.rows.push_back(B * T + t);
        g.row_domain.push_back(block.domain);
        if (dump) g.token_ids.push_back(block.ids[static_cast<size_t>(t)]), g.token_domain.push_back(block.domain);
      }
      counted += take;
      stats.domain_tokens[static_cast<size_t>(block.domain)] += take;
      ++stats.blocks;
      if (o.loss_delta && loss_tokens < o.loss_delta_tokens && take >= 2) {
        const int64_t n = std::min<int64_t>(take, o.loss_delta_tokens - loss_tokens);
        LossSample s;
        s.ids.assign(block.ids.begin(), block.ids.begin() + n);
        s.loss_mask.assign(block.loss_mask.begin(), block.loss_mask.begin() + n);
        loss_sample.push_back(std::move(s));
        loss_tokens += n;
      }
    }
    stats.tokens = counted;
    if (batch_index++ % world.size() != world.rank()) continue;
    g.B = B;
    g.ids.resize(static_cast<size_t>(B * T));
    g.counted = counted;
    group_rows += B * T;
    group.push_back(std::move(g));
    if (group_rows >= group_tokens) run_group();
  }
  run_group();
  if (model->device().is_cuda()) torch::cuda::synchronize();
  if (world.distributed() && !o.forward_only) {
    auto sums = collector.sum_tensors();
    world.all_reduce_sum(sums);
  }
  if (!o.forward_only) collector.finish(stats);
  stats.loop_seconds = seconds();
  progress.finish();

  if (!world.is_main()) return stats;  // rank 0 measures the loss deltas and writes STATS_DIR
  if (o.loss_delta && !o.forward_only) {
    LossDeltaOptions lo;
    lo.batch_size = o.batch_size;
    lo.progress = o.progress;
    LossDeltaResult r = measure_loss_delta(*model, loss_sample, lo);
    stats.loss_delta_tokens = loss_tokens;
    stats.loss_base = r.base_loss;
    for (size_t i = 0; i < stats.layers.size(); ++i) stats.layers[i].loss_delta = r.delta[i];
  }

  // Write everything into a temporary sibling, then rename it into place.
  const fs::path out = fs::absolute(o.out);
  OwnedTempDir owned(out);  // creates out's parent; also removes what an interrupted run left beside `out`
  const fs::path tmp = owned.path();
  try {
    if (!o.forward_only) {
      stats.moments_file = "router_moments.safetensors";
      write_moments(tmp / stats.moments_file, stats, collector);
    }
    if (dump) {
      DumpInfo info{o.model.filename().empty() ? o.model.parent_path().filename().string() : o.model.filename().string(),
                    stats.top_k, moe_layers, stats.domains};
      dump->write(tmp, info);
      stats.probs_npz = "router_probs.npz";
      stats.probs_safetensors = "router_probs.safetensors";
    }
    write_file_atomic(tmp / "stats.json", to_json(stats).dump(1) + "\n");
    remove_tree_or_fail(out);
    fs::rename(tmp, out);
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  return stats;
}

}  // namespace moeforge::stats
