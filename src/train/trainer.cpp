// The training loop: phases, micro-batches, losses, probe, NaN guard, export. What each phase trains is
// resolved first (training_plan.h); the state a checkpoint carries is training_state.h, a step's
// metrics record step_record.h, the run directory's own files run_dir.h.
#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/seed_mix.h"
#include "common/strings.h"
#include "data/batch_iterator.h"
#include "data/data_spec.h"
#include "io/checkpoint_store.h"
#include "model/device.h"
#include "model/expert_parallel.h"
#include "model/tensor_table.h"
#include "dist/world.h"
#include "train/data_parallel.h"
#include "train/distill.h"
#include "train/gradient_buckets.h"
#include "train/export.h"
#include "train/peft_adapter.h"
#include "train/losses.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/probe_message.h"
#include "train/rng_state.h"
#include "train/run_checkpoint.h"
#include "train/run_dir.h"
#include "train/schedule.h"
#include "train/sharded_frozen.h"
#include "train/step_dump.h"
#include "train/step_record.h"
#include "train/teacher.h"
#include "train/teacher_cache.h"
#include "train/trainable.h"
#include "train/training_memory.h"
#include "train/training_plan.h"
#include "train/training_state.h"

namespace moeforge::train {

namespace fs = std::filesystem;

struct Trainer::Impl {
  TrainOptions o;
  TrainingPlan plan;
  model::Transformer* model = nullptr;
  TrainingState state;
  RunState& st = state.run;
  std::map<int64_t, torch::Tensor>& aux_bias = state.aux_bias;
  std::optional<RunState> checkpoint;  // loaded for resume, consumed by the phase it belongs to
  std::vector<torch::Tensor> router0;  // per MoE layer, fp32, as the run started
  std::unique_ptr<MetricsLog> metrics;  // rank 0 only: the other ranks of a data-parallel run write nothing
  dist::World* world = nullptr;        // never null in run(): a one-process World when not distributed
  std::unique_ptr<Teacher> teacher;    // distilling phases only: an online teacher ...
  std::unique_ptr<TeacherCacheReader> cache;  // ... or a teacher cache
  int64_t step_now = 0;                // step within the phase (annealed distillation weights)
  double comm_s = -1;                  // the current step's time in collectives (data parallel), else -1
  model::ExpertParallel ep;            // --expert-parallel over several ranks; inactive otherwise
  std::unique_ptr<ShardedFrozen> sharded_frozen;  // --zero 3: frozen weights split over the ranks
  model::ExchangeTally ep_tally;        // the current step's expert exchanges (time, picks, token rows)
  GradientBuckets* buckets = nullptr;  // data parallel: gradient all-reduce overlapping the backward
  bool last_micro_batch = false;       // of this rank's share of the step: its backward starts the buckets
  TrainResult result;

  // --expert-parallel: each rank computes experts [r E / N, (r + 1) E / N) of every MoE layer (model/expert_parallel.h).
  void enable_expert_parallel(const ModelSpec& spec, const fs::path& model_dir) {
    dist::World& world = *this->world;
    const int64_t E = spec.moe.num_experts;
    if (E <= 0) fail("train: --expert-parallel splits the experts of an MoE model; ", model_dir.string(), " is dense");
    if (!world.distributed()) {
      std::cerr << "moeforge: note: --expert-parallel in one process: every expert is local\n";
      return;
    }
    if (E < world.size())
      fail("train: --expert-parallel over ", world.size(), " ranks needs at least one expert per rank; ", model_dir.string(), " has ", E);
    ep.rank = world.rank();
    ep.size = world.size();
    ep.all_to_all = [&world](const torch::Tensor& rows, const std::vector<int64_t>& send, const std::vector<int64_t>& recv) {
      return world.all_to_all(rows, send, recv);
    };
    ep.tally = &ep_tally;
    if (world.is_main())
      std::cerr << "moeforge: expert parallel: rank 0 computes experts 0-" << ep.first_expert(1, E) - 1 << " of " << E
                << " in every MoE layer\n";
  }

  // --zero 3: frozen weights split over the ranks, gathered on use (train/sharded_frozen.h).
  void enable_sharded_frozen(const Recipe& recipe, bool split_packed) {
    if (ep.active()) fail("train: --zero 3 with --expert-parallel is not supported (each splits the experts its own way); choose one");
    for (const auto& phase : recipe.phases)
      if (phase.method == Method::Lora)
        fail("train: --zero 3 splits frozen weights, which LoRA phase '", phase.name, "' merges with its adapters at every step; "
             "use --zero 2 for LoRA");
    sharded_frozen = std::make_unique<ShardedFrozen>(*world, split_packed);
    if (!world->distributed())
      std::cerr << "moeforge: note: --zero 3 in one process: nothing to split; each layer is still recomputed in the backward\n";
  }

  // Before phase p builds its trainable set: what it trains is whole again (it may have been frozen before).
  std::set<std::string> trained_names(size_t p) const {
    std::set<std::string> names;
    for (const auto& [name, mask] : plan.selections[p]) names.insert(name);
    return names;
  }

  // After: every other frozen layer matrix, embedding or head (not changed by an earlier phase) is split.
  void split_frozen(const TrainableSet& set, std::set<std::string> keep) {
    for (const auto& [name, mask] : state.run.changed) keep.insert(name);
    for (const auto& t : set.tensors()) keep.insert(t.name);
    for (const auto& leaf : set.leaves()) keep.insert(leaf.name);
    const uint64_t before = sharded_frozen->whole_bytes();
    sharded_frozen->shard(model->weights(), keep);
    if (sharded_frozen->whole_bytes() != before) note_split();
  }

  void note_split() const {
    if (world->is_main())
      std::cerr << "moeforge: ZeRO-3: frozen weights of " << sharded_frozen->summary() << "\n";
  }

  std::vector<int64_t> moe_layers() const {
    std::vector<int64_t> out;
    for (int64_t l = 0; l < model->spec().num_layers; ++l)
      if (model->spec().is_moe[l]) out.push_back(l);
    return out;
  }

  // Micro-batch `micro` of the current step draws its router noise from its own generator, seeded
  // from the run's seed, the global step and its index in the step: the same noise on whichever
  // rank runs it (data parallel over any world size = one process), and the CPU generator (LoRA
  // init, which every rank must draw alike) is left alone.
  model::ForwardOptions micro_batch_options(const model::ForwardOptions& f, int64_t micro) const {
    model::ForwardOptions out = f;
    if (f.router_noise_std > 0)
      out.router_noise_generator = at::make_generator<at::CPUGeneratorImpl>(
          mix_seed(plan.recipe.seed, 0x6e6f697365ull /* "noise" */, static_cast<uint64_t>(st.global_step), static_cast<uint64_t>(micro)));
    return out;
  }

  model::ForwardOptions forward_options(size_t p) const {
    model::ForwardOptions f;
    const Phase& phase = plan.recipe.phases[p];
    f.router_noise_std = phase.routing.router_noise_std;
    if (ep.active()) f.expert_parallel = &ep;
    f.layer_source = sharded_frozen.get();
    const int64_t E = model->spec().moe.num_experts;
    for (int64_t l : moe_layers()) {
      torch::Tensor bias;
      auto forced = plan.force[p].find(l);
      if (forced != plan.force[p].end()) {
        bias = torch::zeros({E}, torch::kFloat32);
        for (int64_t e : forced->second) bias[e] = phase.routing.force_route_bias;
        bias = bias.to(model->device());
      }
      auto a = aux_bias.find(l);
      if (a != aux_bias.end() && a->second.abs().sum().item<double>() > 0) bias = bias.defined() ? bias + a->second : a->second.clone();
      if (bias.defined()) f.selection_bias[l] = bias;
    }
    return f;
  }

  // The distillation weights of phase p at its current step (annealed linearly over the phase).
  struct DistillNow {
    double ce = 1, kd = 0, temperature = 1, router = 0;
  };
  DistillNow distill_now(size_t p) const {
    const Phase& phase = plan.recipe.phases[p];
    const DistillOptions& d = phase.losses.distill;
    if (!d.enabled) return {};
    return {d.ce_weight.at(step_now, phase.steps), d.weight.at(step_now, phase.steps), d.temperature.at(step_now, phase.steps),
            d.router_weight.at(step_now, phase.steps)};
  }

  // One micro-batch: forward to the final hidden states, the head in chunks with CE (+ KD from the
  // teacher under no-grad; train/distill.h), router losses, one backward; adds to `stats`. The head's
  // [tokens, vocab] logits never exist beyond one chunk, with or without a teacher.
  void micro_step(TrainableSet& set, const data::Batch& b, size_t p, int64_t total_targets, int64_t accum, StepStats& stats,
                  const model::ForwardOptions& fopts) {
    const Phase& phase = plan.recipe.phases[p];
    const DistillOptions& d = phase.losses.distill;
    const int64_t B = b.batch_size, T = b.block_size;
    const auto dev = model->device();
    auto ids = torch::from_blob(const_cast<int32_t*>(b.ids.data()), {B, T}, torch::kInt32).to(torch::kInt64).to(dev);     // [B, T]
    auto mask = torch::from_blob(const_cast<uint8_t*>(b.loss_mask.data()), {B, T}, torch::kUInt8).to(torch::kFloat32).to(dev);
    const DistillNow now = distill_now(p);
    auto weights = set.effective_weights();
    model::ForwardOptions f = fopts;
    f.hidden_only = true;
    auto out = model->forward_with(weights, ids, f);
    std::vector<model::LayerRouting> teacher_routing;
    TeacherTokens tt;
    if (d.enabled) {
      tt = cache ? cache->lookup(b, now.router > 0) : teacher->run(ids, now.router > 0 ? &teacher_routing : nullptr);
      if (cache && d.top_k > 0 && d.top_k < cache->manifest().top_k) fold_teacher_top_k(tt, d.top_k);
    }
    HeadLossOptions ho;
    ho.ce_coef = now.ce;
    ho.kd_coef = now.kd;
    ho.scale = 1.0 / static_cast<double>(std::max<int64_t>(total_targets, 1));
    if (d.enabled) {
      ho.divergence = d.divergence;
      ho.beta = d.beta;
      ho.temperature = now.temperature;
      ho.top_k = d.top_k;
      ho.kd_vocab = cache ? cache->manifest().vocab : teacher->kd_vocab();
      ho.chunk_tokens = d.chunk_tokens;
    }
    // ZeRO-3: a split head is made whole for this pass only (it does its own backward).
    const torch::Tensor head_weight = f.layer_source ? f.layer_source->head(weights) : weights.lm_head;
    auto head = chunked_head_loss(out.hidden, head_weight, ids, mask, d.enabled ? &tt : nullptr, ho);
    auto real_N = real_tokens(mask).reshape({-1}).to(out.hidden.device());
    auto rl = router_losses(out.routing, real_N, model->spec().moe.num_experts);
    auto rest = (rl.lb * phase.losses.lb_coef + rl.z * phase.losses.z_coef) / static_cast<double>(accum);
    double router_kd_value = 0;
    if (now.router > 0) {
      std::vector<double> layers;
      auto rkd = cache ? router_kd_cached(out.routing, tt, real_N, d.router_temperature, &layers)
                       : router_kd(out.routing, teacher_routing, real_N, d.router_temperature, &layers);
      router_kd_value = rkd.item<double>();
      stats.router_kd_per_layer.resize(layers.size(), 0.0);
      for (size_t l = 0; l < layers.size(); ++l) stats.router_kd_per_layer[l] += layers[l] / static_cast<double>(accum);
      rest = rest + rkd * (now.router / static_cast<double>(accum));
    }
    std::vector<torch::Tensor> roots, grads;
    if (rest.requires_grad()) {
      roots.push_back(rest);
      grads.push_back(torch::ones_like(rest));
    }
    if (head.rows.defined()) {
      roots.push_back(head.rows);
      grads.push_back(head.rows_grad);
    }
    if (!roots.empty()) {
      const bool overlap = buckets && last_micro_batch;  // the head's own backward (above) came before: not armed
      if (overlap) buckets->arm();
      torch::autograd::backward(roots, grads);
      if (overlap) buckets->disarm();
    }
    stats.add(head.stats.ce_sum, real_N.sum().item<int64_t>(), rl, accum);
    if (!d.enabled) return;
    stats.distill = true;
    stats.kd_sum += head.stats.kd_sum;
    stats.kl_sum += head.stats.kl_sum;
    stats.agree += head.stats.agree;
    stats.targets += head.stats.targets;
    stats.router_kd += router_kd_value / static_cast<double>(accum);
  }

  // Before a phase: one forward/backward on the first micro-batch; every selected tensor (and
  // every selected expert) must receive gradient. No state changes (RNG restored, grads cleared).
  void probe(TrainableSet& set, const data::BatchIterator& it, size_t p) {
    if (plan.recipe.probe == ProbeMode::Off) return;
    data::BatchIterator copy = it;
    data::Batch b;
    copy.next(b);
    auto saved = rng_state(model->device());
    StepStats stats;
    micro_step(set, b, p, static_cast<int64_t>(b.targets()), 1, stats, micro_batch_options(forward_options(p), 0));
    set_rng_state(model->device(), saved);
    // Expert parallel: an expert's gradient forms on its owner only (every rank ran the same batch).
    if (ep.active()) all_reduce_gradients(*world, set.leaves());
    std::vector<std::string> problems;
    const auto layers = moe_layers();
    std::vector<StarvedExpert> starved;  // named once each in one message (probe_message.h)
    for (const auto& t : set.tensors()) {
      auto g = t.lora ? t.lora_b.grad() : t.value.grad();
      if (t.lora && (!g.defined() || g.abs().sum().item<double>() == 0)) g = t.lora_a.grad();
      const int64_t E = t.experts.empty() ? 0 : static_cast<int64_t>(t.mask.size());
      if (!t.experts.empty() && static_cast<int64_t>(t.experts.size()) < E) {
        const int64_t layer = model::parse_canonical_name(t.name).layer;
        size_t li = std::find(layers.begin(), layers.end(), layer) - layers.begin();
        for (size_t i = 0; i < t.experts.size(); ++i) {
          const bool ok = g.defined() && g[static_cast<int64_t>(i)].abs().sum().item<double>() > 0;
          if (ok) continue;
          const int64_t picks = li < stats.counts.size() ? stats.counts[li][t.experts[i]].item<int64_t>() : 0;
          starved.push_back({layer, t.experts[i], picks});
        }
      } else if (!g.defined() || g.abs().sum().item<double>() == 0) {
        problems.push_back(t.name + " gets no gradient in the probe step");
      }
    }
    if (!starved.empty())
      problems.push_back(starved_experts_message(starved, stats.tokens, plan.force[p], plan.recipe.phases[p].routing.force_route_bias,
                                                 model->weights()));
    set.zero_grad();
    if (problems.empty()) return;
    std::string msg = plan.recipe.phases[p].name + ": probe: " + join(problems, "; ");
    if (plan.recipe.probe == ProbeMode::Error) fail(msg, " (set \"probe\": \"warn\" to train anyway)");
    std::cerr << "moeforge: warning: " << msg << "\n";
  }

  void update_aux_free(size_t p, const StepStats& stats) {
    const double gamma = plan.recipe.phases[p].routing.aux_free_gamma;
    if (gamma <= 0) return;
    const auto layers = moe_layers();
    for (size_t i = 0; i < layers.size() && i < stats.counts.size(); ++i) {
      auto load = stats.counts[i].to(torch::kFloat32);  // [E]
      auto& bias = aux_bias[layers[i]];
      if (!bias.defined()) bias = torch::zeros_like(load);
      bias = bias + gamma * torch::sign(load.mean() - load);
      bias = bias - bias.mean();
    }
  }

  // SFA (NEXUS): each trained leaf <- alpha * its value at the previous merge + (1 - alpha) * now; the
  // first merge point of a phase only records the anchor. Optimiser state is left as it is.
  void sfa_merge(TrainableSet& set, const SfaOptions& sfa) {
    torch::NoGradGuard no_grad;
    for (auto& leaf : set.leaves()) {
      auto it = state.sfa_anchor.find(leaf.name);
      if (it == state.sfa_anchor.end()) {
        state.sfa_anchor[leaf.name] = leaf.tensor.detach().clone();
        continue;
      }
      leaf.tensor.mul_(1.0 - sfa.alpha).add_(it->second, sfa.alpha);
      it->second.copy_(leaf.tensor);
    }
    set.write_back();
  }

  // `sharded`: each rank's optimiser holds its share of the state; ranks 1.. write theirs, then rank 0
  // writes the checkpoint around them (one directory, renamed into place when complete).
  void save(const TrainableSet* set, const Optimizer* opt, bool sharded = false) {
    if (sharded && opt) {
      if (!world->is_main()) {
        std::map<std::string, torch::Tensor> share;
        for (const auto& [slot, t] : opt->state()) share["opt." + slot] = t;
        save_checkpoint_shard(o.out_dir, st.global_step, world->rank(), world->size(), share);
      }
      world->barrier();
      if (world->is_main())
        state.save(o.out_dir, plan.recipe.keep_checkpoints, model->weights(), model->device(), set, opt, world->size());
      return;
    }
    if (!world->is_main()) return;
    state.save(o.out_dir, plan.recipe.keep_checkpoints, model->weights(), model->device(), set, opt);
  }

  void run_phase(size_t p) {
    const Phase& phase = plan.recipe.phases[p];
    const Recipe& r = plan.recipe;
    data::DataOptions dopt;
    dopt.block_size = phase.seq_len;
    dopt.validation_fraction = r.validation_fraction;
    dopt.seed = r.seed;
    dopt.packing = data::parse_pack_mode(r.packing);
    dopt.max_bad_fraction = o.max_bad_fraction >= 0 ? o.max_bad_fraction : r.max_bad_fraction;
    if (!o.data_cache_dir.empty()) dopt.cache_dir = o.data_cache_dir;
    const std::string& data_spec = phase.data.empty() ? o.data_spec : phase.data;  // the phase's own, or the run's
    // Rank 0 tokenises into the shared token cache first; the others then read it.
    auto dataset = world->main_first([&] { return data::Dataset::open(data_spec, o.tokenizer_dir, dopt); });
    if (dataset.num_blocks(data::Split::Train) == 0) fail(data_spec, ": no training blocks of ", phase.seq_len, " tokens");
    if (cache && phase.losses.distill.enabled) {  // the cache must be of this phase's blocks
      const auto diff = manifest_differences(cache->manifest(), run_manifest(dataset, dopt, o.tokenizer_dir, data_spec, r.packing));
      if (!diff.empty())
        fail(cache->dir().string(), ": teacher cache does not match phase '", phase.name, "': ", join(diff, "; "),
             " (write one with `moeforge teacher-cache ... --recipe` for this run)");
    }
    data::BatchIterator it(dataset, data::Split::Train, {phase.batch_size, r.seed + p, true, true});

    TrainableOptions topts{phase.method, phase.lora, phase.optimizer, plan.groups[p], &state.masters};
    const bool mid_phase = checkpoint && checkpoint->phase == static_cast<int64_t>(p) && checkpoint->step_in_phase > 0;
    const auto trains = trained_names(p);
    if (sharded_frozen) sharded_frozen->unshard(model->weights(), trains);
    TrainableSet set(model->weights(), model->spec(), plan.selections[p], topts);
    if (sharded_frozen) split_frozen(set, trains);
    Optimizer opt(phase.optimizer);
    ShardedOptimizer shards(*world, set.leaves(), std::min(o.zero_stage, 2));  // ZeRO-3 shards the trained state as ZeRO-2
    // ZeRO-2 reduces each gradient to its owner after the backward; stages 0 and 1 all-reduce in
    // buckets while it runs (--bucket-mb 0: one bucket after it).
    std::unique_ptr<GradientBuckets> overlap;
    if (world->distributed() && o.zero_stage < 2 && o.bucket_mb > 0)
      overlap = std::make_unique<GradientBuckets>(*world, set.leaves(), static_cast<int64_t>(o.bucket_mb * (1 << 20)));
    int64_t s0 = 0;
    if (mid_phase) {
      s0 = checkpoint->step_in_phase;
      it.seek(checkpoint->data_position);
      TrainingState::restore_phase(*checkpoint, set, opt, model->device(), o.out_dir.string());
      shards.keep_own_state(opt, set.leaves());
    } else {
      state.sfa_anchor.clear();
      probe(set, it, p);
    }
    checkpoint.reset();
    const auto layers = moe_layers();
    for (int64_t s = s0; s < phase.steps; ++s) {
      step_now = s;
      const auto t0 = std::chrono::steady_clock::now();
      const double lr = phase.optimizer.lr * lr_factor(phase.schedule, s, phase.steps);
      // Data parallel: every rank draws the whole step's micro-batches, trains on its share.
      const int64_t ranks = world->size(), accum = phase.grad_accum * ranks;
      std::vector<data::Batch> micro(accum);
      int64_t total_targets = 0;
      for (auto& b : micro) {
        it.next(b);
        total_targets += static_cast<int64_t>(b.targets());
      }
      set.zero_grad();
      StepStats stats;
      ep_tally = {};
      const auto fopts = forward_options(p);
      buckets = overlap.get();
      for (int64_t i = world->rank(); i < accum; i += ranks) {
        last_micro_batch = i + ranks >= accum;
        micro_step(set, micro[i], p, total_targets, accum, stats, micro_batch_options(fopts, i));
      }
      buckets = nullptr;
      stats.expert_picks = ep_tally.picks, stats.expert_token_rows = ep_tally.token_rows;
      const auto c0 = std::chrono::steady_clock::now();  // from here: the communication the backward did not hide
      if (overlap) overlap->finish();
      else shards.reduce_gradients(set.leaves());
      all_reduce_step_stats(*world, stats);
      comm_s = world->distributed() ? std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count() + ep_tally.seconds : -1;
      const double ce = stats.ce_sum / static_cast<double>(std::max<int64_t>(total_targets, 1));
      const DistillNow dn = distill_now(p);
      const double kd = stats.kd_sum / static_cast<double>(std::max<int64_t>(total_targets, 1));
      const double loss = (stats.distill ? dn.ce * ce + dn.kd * kd + dn.router * stats.router_kd : ce) +
                          phase.losses.lb_coef * stats.lb + phase.losses.z_coef * stats.z;
      if (st.global_step < o.dump_steps && world->is_main())  // debugging: batch, losses and unclipped gradients (step_dump.h)
        write_step_dump(o.out_dir / "dump", st.global_step, model->spec(), model->weights(), set, micro, {ce, stats.lb, stats.z, loss, lr});
      const double grad_norm = shards.clip_gradients(set.leaves(), phase.clip_grad_norm);
      const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
      if (!finite) {
        ++st.bad_streak;
        set.zero_grad();
        std::cerr << "moeforge: warning: step " << st.global_step + 1 << " (" << phase.name << " step " << s + 1
                  << "): non-finite " << (std::isfinite(loss) ? "gradient" : "loss") << "; update skipped\n";
        if (st.bad_streak >= r.max_bad_steps)
          fail("training stopped: ", st.bad_streak, " consecutive steps with non-finite loss or gradient (phase '", phase.name,
               "', step ", s + 1, "); the last good checkpoint in ", (o.out_dir / "checkpoints").string(),
               " is intact (lower the lr, raise clip_grad_norm protection, or check the data)");
      } else {
        st.bad_streak = 0;
        shards.step(opt, set.leaves(), lr);
        set.write_back();
        update_aux_free(p, stats);
        if (phase.sfa.enabled && phase.sfa.every > 0 && (s + 1) % phase.sfa.every == 0) sfa_merge(set, phase.sfa);
      }
      ++st.global_step;
      st.step_in_phase = s + 1;
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tps = static_cast<double>(stats.tokens) / std::max(seconds, 1e-9);
      result.losses.push_back(finite ? loss : std::nan(""));
      if (st.global_step % r.log_every == 0 || s + 1 == phase.steps) log_step(p, s, loss, ce, stats, lr, grad_norm, tps, !finite);
      if (metrics) metrics->progress(phase.name, s + 1, phase.steps, loss, lr, tps);
      const bool phase_end = s + 1 == phase.steps;
      const bool checkpoint_now = !phase_end && r.checkpoint_every > 0 && st.global_step % r.checkpoint_every == 0;
      if (phase.sfa.enabled && phase.sfa.every == 0 && (phase_end || checkpoint_now)) sfa_merge(set, phase.sfa);
      if (phase_end) {
        state.sfa_anchor.clear();
        if (phase.method == Method::Lora && world->is_main()) {
          auto adapter = write_peft_adapter(model->spec(), set, phase.lora, fs::absolute(o.model_dir).string(), o.out_dir);
          if (!adapter.skipped.empty())
            std::cerr << "moeforge: note: LoRA on " << join(adapter.skipped, ", ")
                      << " is not expressible as a PEFT adapter; it is merged into trainable.safetensors\n";
          if (!adapter.full.empty())
            std::cerr << "moeforge: note: " << join(adapter.full, ", ")
                      << " trained in full (not LoRA targets) and are not in the PEFT adapter; merge-deltas applies them\n";
        }
        set.finish();
        merge_selection(st.changed, set.changed());
        st.phase = static_cast<int64_t>(p) + 1;
        st.step_in_phase = 0;
        st.data_position = data::Position{};
        st.optimizer_steps = 0;
        save(nullptr, nullptr);
      } else {
        st.data_position = it.position();
        if (checkpoint_now) save(&set, &opt, shards.sharded());  // sharded: every rank writes its share
      }
      if (o.stop_after_steps > 0 && st.global_step >= o.stop_after_steps && !(phase_end && p + 1 == r.phases.size())) {
        stopped = true;
        return;
      }
    }
    if (metrics) metrics->end_progress();
  }

  void log_step(size_t p, int64_t s, double loss, double ce, const StepStats& stats, double lr, double grad_norm, double tps,
                bool skipped) {
    if (!metrics) return;
    StepScalars scalars{st.global_step, s + 1, plan.recipe.phases[p].name, loss, ce, lr, grad_norm, tps, comm_s, skipped};
    std::vector<torch::Tensor> routers_now;
    for (int64_t l : moe_layers())
      routers_now.push_back(state.full_precision(model::canonical_name(l, "router"), model->weights().layers[l].router));
    metrics->log(step_record(scalars, stats, router0, routers_now));
  }

  bool stopped = false;
};

namespace {

// The run's one distillation teacher, resolved from `--teacher` or the recipe's phases (absolute, so
// run.json and --resume mean the same directory from anywhere).
struct DistillPlan {
  bool enabled = false, enabled_by_flag = false, router_kd = false;
  fs::path teacher, cache;  // one of the two
};

DistillPlan resolve_teacher(TrainOptions& o, const Recipe& recipe, bool say) {
  DistillPlan d;
  bool any = false;
  for (const auto& phase : recipe.phases) any = any || phase.losses.distill.enabled;
  if (!any && (!o.teacher_dir.empty() || !o.teacher_cache.empty())) {
    // `--teacher` alone: every phase distils with the default losses.distill.
    for (auto& phase : o.recipe["phases"]) phase["losses"]["distill"] = nlohmann::json::object();
    if (say)  // rank 0 only
      std::cerr << "moeforge: note: --teacher: every phase distils with the default losses.distill (forward KL, T 1, "
                   "weight 1, ce_weight 1); set losses.distill in the recipe to choose\n";
    d.enabled_by_flag = true;
    any = true;
  }
  if (!any) return d;
  d.enabled = true;
  fs::path teacher = o.teacher_dir;
  for (const auto& phase : recipe.phases) {
    const DistillOptions& x = phase.losses.distill;
    if (!x.enabled) continue;
    if (!x.teacher_cache.empty() && o.teacher_dir.empty() && o.teacher_cache.empty()) {
      if (!d.cache.empty() && fs::absolute(x.teacher_cache) != d.cache)
        fail(o.recipe_label, ": phases name different teacher caches; one per run");
      d.cache = fs::absolute(x.teacher_cache);
    }
    if (x.router_weight.start > 0 || x.router_weight.end > 0) d.router_kd = true;
    if (!o.teacher_dir.empty() || x.teacher.empty()) continue;
    if (!teacher.empty() && fs::absolute(x.teacher) != teacher)
      fail(o.recipe_label, ": phases name different teachers (", teacher.string(), ", ", x.teacher, "); one teacher per run");
    teacher = fs::absolute(x.teacher);
  }
  if (!o.teacher_cache.empty()) d.cache = fs::absolute(o.teacher_cache);
  if (!o.teacher_dir.empty() && !o.teacher_cache.empty()) fail("train: give --teacher or --teacher-cache, not both");
  if (!d.cache.empty()) {
    if (!teacher.empty() && o.teacher_dir.empty() && o.teacher_cache.empty())
      fail(o.recipe_label, ": phases name both a teacher and a teacher cache; one per run");
    if (!fs::exists(d.cache / "manifest.json")) fail(d.cache.string(), ": not a teacher cache (no manifest.json)");
    return d;
  }
  if (teacher.empty())
    fail(o.recipe_label, ": losses.distill needs a teacher: \"teacher\": \"MODEL_DIR\" in the recipe, or train --teacher MODEL_DIR");
  d.teacher = fs::absolute(teacher);
  Teacher::check_directory(d.teacher);
  return d;
}

// What a teacher cache must agree on with the student and the recipe (the data is checked per phase).
void check_cache(const TeacherCacheReader& cache, const model::Transformer& student, const fs::path& tokenizer_dir, const Recipe& recipe,
                 bool router_kd) {
  const CacheManifest& m = cache.manifest();
  const std::string where = cache.dir().string() + ": teacher cache";
  const std::string tok = tokenizer_hash(tokenizer_dir);
  if (tok != m.tokenizer_xxh64)
    fail(where, ": tokenizer.xxh64 is ", m.tokenizer_xxh64, ", the student's tokenizer (", tokenizer_dir.string(), ") ", tok,
         ": the cache was written with another tokenizer");
  if (m.vocab > student.spec().vocab_size)
    fail(where, ": vocab ", m.vocab, " exceeds the student's vocabulary ", student.spec().vocab_size);
  for (const auto& phase : recipe.phases) {
    const auto& d = phase.losses.distill;
    if (d.enabled && d.top_k > m.top_k)
      fail(where, ": top_k is ", m.top_k, ", phase '", phase.name, "' asks ", d.top_k, " (a cache can give its K or fewer; 0 = its K)");
  }
  if (!router_kd) return;
  std::vector<int64_t> layers;
  for (int64_t l = 0; l < student.spec().num_layers; ++l)
    if (student.spec().is_moe[l]) layers.push_back(l);
  if (m.router_top_k == 0) fail(where, ": router_top_k is 0 (no router logits stored) but the recipe distils the router");
  if (layers != m.moe_layers || student.spec().moe.num_experts != m.num_experts)
    fail(where, ": moe_layers/num_experts are ", m.moe_layers.size(), " layers of ", m.num_experts, " experts, the student has ",
         layers.size(), " of ", student.spec().moe.num_experts);
}

}  // namespace

Trainer::Trainer(TrainOptions options) : impl_(std::make_unique<Impl>()), options_(std::move(options)) {}
Trainer::~Trainer() = default;
const std::map<std::string, torch::Tensor>& Trainer::masters() const { return impl_->state.masters; }

TrainResult Trainer::run() {
  Impl& I = *impl_;
  dist::World one_process;
  dist::World& world = options_.world ? *options_.world : one_process;
  I.world = &world;
  // Rank 0 settles the run directory (it may clear a run that never checkpointed) before the others look.
  TrainOptions o = world.main_first([&] { return resolve_run_options(options_); });
  world.barrier();  // ... and every rank has looked before rank 0 writes run.json
  if (!world.is_main()) o.progress = false;
  // Validate the recipe (and the teacher's directory) before loading anything large.
  Recipe precheck = parse_recipe(o.recipe, o.recipe_label);
  const DistillPlan distill = resolve_teacher(o, precheck, world.is_main());
  if (distill.enabled) {
    o.teacher_dir = distill.teacher;
    o.teacher_cache = distill.cache;
    if (distill.enabled_by_flag) precheck = parse_recipe(o.recipe, o.recipe_label);
  }
  const ModelSpec spec = load_model_spec(*CheckpointStore::open(o.model_dir));
  if (o.expert_parallel) I.enable_expert_parallel(spec, o.model_dir);
  for (const auto& phase : precheck.phases)
    check_sequence_length(spec, phase.seq_len, o.recipe_label + ": phase '" + phase.name + "' seq_len", precheck.allow_long_seq);
  if (o.dump_steps > 0 && spec.moe.layout == ExpertLayout::Mxfp4 && !o.dequantize)
    fail("train: --dump-steps writes expert gradients in the dense layout; add --dequantize to hold this MXFP4 model's experts dense");
  // What each phase trains, from the spec: its memory joins the load's plan, so a run that cannot fit is refused before loading.
  I.plan = make_training_plan(spec, o.recipe, o.recipe_label, o.model_dir, o.analysis_plan);
  const TrainingMemory training_memory = plan_training_memory(spec, I.plan, !o.dequantize, distill.enabled && distill.cache.empty(),
                                                              data_parallel_shape(world.size(), o.zero_stage, o.bucket_mb));
  I.o = o;
  if (precheck.threads > 0) torch::set_num_threads(static_cast<int>(precheck.threads));
  else if (world.distributed())  // the machine's cores shared by its ranks
    torch::set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / world.local_size()));
  model::LoadOptions load;
  load.device = model::rank_device(model::parse_device(o.device, "train: --device"), world.local_rank(), world.local_size(),
                                   "train: --device");
  // Packed experts are split where the ranks share no page cache: on a GPU, or over several machines.
  if (o.zero_stage >= 3) I.enable_sharded_frozen(precheck, ShardedFrozen::packed_unshared(load.device, world));
  // Every rank, before the first collective on the device: NCCL there when every rank is on a GPU.
  const std::string backend = world.use_device(load.device);
  if (o.verbose && world.is_main() && world.distributed())
    std::cerr << "train: " << world.size() << " ranks, collectives on " << load.device.str() << " through " << backend << "\n";
  if (!o.teacher_device.empty()) {
    if (!distill.enabled || !distill.cache.empty()) fail("train: --teacher-device needs an online teacher (--teacher or losses.distill.teacher)");
    model::parse_device(o.teacher_device, "train: --teacher-device");  // a bad name fails before anything loads
  }
  // bf16: the model (frozen tensors included) is held and run in bf16; trained tensors keep fp32 masters.
  load.dtype = precheck.precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  load.pack_mxfp4 = !o.dequantize;  // frozen MXFP4 experts stay packed; the trained ones are unpacked below
  load.max_memory_bytes = o.max_memory_bytes;
  load.local_ranks = world.local_size();  // ranks on this machine share its memory
  load.verbose = o.verbose && world.is_main();
  if (load.device.is_cpu()) {  // on an accelerator the state lives beside the weights there
    load.work_bytes = training_memory.total();
    load.work_what = describe(training_memory);
  }
  if (I.sharded_frozen) {  // split while loading: a frozen tensor is whole only until its shard is taken
    std::set<std::string> keep;  // a resumed run's changed tensors are restored whole below
    if (o.resume) I.checkpoint = load_latest_checkpoint(o.out_dir);
    if (I.checkpoint)
      for (const auto& [name, mask] : I.checkpoint->changed) keep.insert(name);
    I.sharded_frozen->split_while_loading(load, std::move(keep));
  }
  model_ = model::Transformer::load(o.model_dir, load);
  I.model = model_.get();
  if (I.sharded_frozen) I.note_split();
  unpack_selected_experts(model_->weights(), I.plan.selections, I.sharded_frozen.get());
  if (distill.enabled && !distill.cache.empty()) {
    I.cache = std::make_unique<TeacherCacheReader>(distill.cache);
    check_cache(*I.cache, *model_, o.tokenizer_dir, I.plan.recipe, distill.router_kd);
  } else if (distill.enabled) {
    TeacherCheck check;
    check.router_kd = distill.router_kd;
    check.device = o.teacher_device;
    check.local_ranks = world.local_size();
    if (I.sharded_frozen) check.split_over = &world;  // --zero 3: the teacher is frozen weights too
    I.teacher = Teacher::load(o.teacher_dir, *model_, o.tokenizer_dir, check);
  }
  for (int64_t l : I.moe_layers())
    I.router0.push_back(model_->weights().layers[l].router.detach().to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true));
  if (o.resume && !I.checkpoint) I.checkpoint = load_latest_checkpoint(o.out_dir);
  if (I.checkpoint) {
    I.state.restore(*I.checkpoint, model_->weights(), model_->device(), o.out_dir.string());
    if (o.rewrite_run_files && world.is_main()) write_run_files(o);
    std::cerr << "moeforge: resuming " << o.out_dir.string() << " at step " << I.st.global_step << " (phase "
              << I.st.phase << ", step " << I.st.step_in_phase << ")\n";
  } else {
    if (o.resume) std::cerr << "moeforge: " << o.out_dir.string() << " has no checkpoint yet; starting from the beginning\n";
    torch::manual_seed(I.plan.recipe.seed);
    if (world.is_main()) write_run_files(o);
  }
  if (world.is_main())
    I.metrics = std::make_unique<MetricsLog>(o.out_dir, o.resume ? I.st.global_step : -1, MetricsOptions{o.tensorboard, o.progress});
  for (size_t p = static_cast<size_t>(I.st.phase); p < I.plan.recipe.phases.size(); ++p) {
    I.run_phase(p);
    if (I.stopped) {
      I.result.steps = I.st.global_step;
      I.result.out_dir = o.out_dir;
      return I.result;
    }
  }
  if (I.metrics) I.metrics->end_progress();
  I.result.steps = I.st.global_step;
  I.result.out_dir = o.out_dir;
  if (!world.is_main()) {  // rank 0 writes the outputs; the others' weights are the same
    I.result.finished = true;
    return I.result;
  }
  // Exported at full precision: the fp32 masters stand in for the model's bf16 copies.
  model::ModelWeights exported = model_->weights();
  model::for_each_parameter(exported, [&](const std::string& name, torch::Tensor& t) {
    t = I.state.full_precision(name, t);
  });
  const auto model_store = CheckpointStore::open(o.model_dir);  // packed MXFP4 layers copy their untouched experts from it
  I.result.trainable = write_trainable(model_->spec(), exported, I.st.changed, o.out_dir / "trainable.safetensors", model_store.get());
  write_run_summary(o.out_dir, I.st.global_step, I.result.trainable, I.st.changed, I.aux_bias);
  I.result.steps = I.st.global_step;
  I.result.finished = true;
  I.result.out_dir = o.out_dir;
  return I.result;
}

}  // namespace moeforge::train
