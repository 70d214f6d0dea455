// Training recipes: a JSON list of phases, each saying what trains (selectors), how (full or LoRA),
// with which routing aids, losses, optimiser and schedule. Parsed and validated before any work;
// every default lives here (and in docs/TRAINING.md). Errors name the field: "r.json: phases[1].optimizer.lr: must be > 0".
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moeforge::train {

enum class Method : uint8_t { Full, Lora };
enum class OptimizerKind : uint8_t { AdamW, Adafactor };
enum class ScheduleKind : uint8_t { Constant, Linear, Cosine, InverseSqrt, WarmupStableDecay };
enum class ProbeMode : uint8_t { Error, Warn, Off };

struct LoraOptions {
  int64_t rank = 16;       // r
  double alpha = 32.0;     // scale = alpha / r (PEFT's default, not rsLoRA)
  double dropout = 0.0;    // only 0 is supported: adapters are applied as merged weight deltas
  bool router = false;     // the router becomes a LoRA target only when asked (else trained fully if selected)
};

struct RoutingAids {
  // Experts that get a large selection-only bias during this phase (removed at phase end):
  // "" = none; "selected" = every expert this phase's selectors pick; or "L:E,L:E".
  std::string force_route;
  double force_route_bias = 12.0;  // MoE Lab's +12
  double router_noise_std = 0.0;   // N(0, std) added to router logits while training
  double aux_free_gamma = 0.0;     // DeepSeek-V3 aux-loss-free bias update rate (0 = off; paper 1e-3)
};

// A number that may change linearly over a phase: {"start": a, "end": b} (or a plain number).
struct Annealed {
  double start = 0.0, end = 0.0;
  double at(int64_t step, int64_t steps) const {  // step 0 -> start, last step -> end
    return steps <= 1 ? start : start + (end - start) * static_cast<double>(step) / static_cast<double>(steps - 1);
  }
};

enum class KdDivergence : uint8_t { ForwardKl, ReverseKl, Jsd };

// Knowledge distillation (train/distill.h): loss = ce_weight * CE + weight * token KD + router_weight * router KD.
struct DistillOptions {
  bool enabled = false;
  std::string teacher;                 // model directory (or `train --teacher`); same tokenizer as the student
  std::string teacher_cache;           // or a `moeforge teacher-cache` directory (or `train --teacher-cache`)
  KdDivergence divergence = KdDivergence::ForwardKl;  // KL(teacher||student), KL(student||teacher), or TRL's JSD
  double beta = 0.5;                   // JSD: mixture = (1 - beta) student + beta teacher (0 = forward, 1 = reverse KL)
  Annealed temperature{1.0, 1.0};      // token KD at T, times T^2
  Annealed weight{1.0, 1.0};           // token KD weight
  Annealed ce_weight{1.0, 1.0};        // cross-entropy weight
  Annealed router_weight{0.0, 0.0};    // per-layer router-logit KL (NEXUS), mean over MoE layers and tokens
  double router_temperature = 4.0;     // NEXUS's T for the router KL (times T^2)
  int64_t top_k = 0;                   // 0 = the teacher's full distribution; K = its top K plus one tail bucket
  int64_t chunk_tokens = 0;            // tokens per lm_head chunk (memory: chunk x vocab floats); 0 = about 128 MB per buffer
};

struct LossOptions {
  double lb_coef = 0.01;   // Switch load-balancing: coef * mean over MoE layers of E * sum_i f_i P_i
  double z_coef = 0.001;   // router z-loss: coef * mean over MoE layers of mean_t logsumexp(logits_t)^2
  DistillOptions distill;
};

// Stochastic weight averaging of NEXUS (SFA): every `every` steps (0 = at each checkpoint and the phase end),
// each trained tensor <- alpha * its value at the previous merge + (1 - alpha) * now.
struct SfaOptions {
  bool enabled = false;
  double alpha = 0.25;
  int64_t every = 0;
};

struct ParamGroup {
  std::string select;          // selector expression (as in Phase::select)
  double lr_scale = 1.0;       // lr multiplier for tensors it matches (first matching group wins)
  double weight_decay = -1.0;  // < 0: the optimiser's weight decay
};

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double lr = 1e-4;                  // peak learning rate
  double beta1 = 0.9, beta2 = 0.999; // AdamW betas; Adafactor uses beta1 (0 = no momentum)
  double eps = 1e-8;                 // AdamW eps; Adafactor eps1 (regulariser of g^2) defaults to 1e-30
  double weight_decay = 0.0;         // decoupled; applied to tensors with >= 2 dims (matrices, experts, LoRA)
  bool decay_vectors = false;        // also decay 1-D tensors (norms, biases)
  double decay_rate = -0.8;          // Adafactor: beta2_t = 1 - t^decay_rate
  double clip_threshold = 1.0;       // Adafactor: update RMS clipping
  std::vector<ParamGroup> groups;    // per-group lr multipliers, e.g. {"select": "router", "lr_scale": 0.001}
};

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Constant;
  int64_t warmup_steps = 0;          // linear warmup steps (factor (s+1)/W); or
  double warmup_fraction = 0.0;      // ... a fraction of the phase's steps (used when warmup_steps == 0)
  double warmup_max_fraction = 1.0;  // caps warmup at this fraction of the phase (short runs)
  double warmup_start = 0.0;         // warmup starts from this fraction of the peak (NEXUS WSD: 0.1)
  double min_lr_ratio = 0.0;         // linear/cosine/WSD decay end, as a fraction of the peak
  double stable_fraction = 0.2;      // WSD: fraction of the phase held at the peak after warmup
  std::string decay_shape = "cosine";// WSD decay: "cosine" | "linear"
  int64_t timescale = 0;             // inverse-sqrt: factor 1/sqrt((s - W + T) / T); 0 = max(W, 1)
};

// A phase trained in `stages` parts whose selection grows (training_plan.cpp expands it): stage k of
// N trains the phase's selection restricted to the first ceil(k U / N) of its U units — layers, or
// (layer, expert) pairs — the top layers first (`top_down`) or the bottom ones. Tensors outside the
// units (embeddings, final norm, lm_head; routers and shared experts when unit is experts) train in
// every stage. Steps are split evenly, the remainder going to the first stages.
struct ProgressiveUnfreeze {
  int64_t stages = 0;  // 0 = off
  bool experts = false;
  bool top_down = true;
};

struct Phase {
  std::string name;                  // default "phase<i>"
  int64_t steps = 0;                 // optimiser steps (required, > 0)
  int64_t batch_size = 8;            // sequences per micro-batch
  int64_t seq_len = 512;             // tokens per sequence (data block size)
  int64_t grad_accum = 1;            // micro-batches per optimiser step
  std::string data;                  // this phase's data spec or mixture ("" = the run's --data); absolute in run dirs
  std::vector<std::string> select;   // selector terms (see selectors.h); required
  Method method = Method::Full;
  LoraOptions lora;
  RoutingAids routing;
  LossOptions losses;
  SfaOptions sfa;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  double clip_grad_norm = 1.0;       // global L2 norm over the phase's trainable tensors; 0 = off
  ProgressiveUnfreeze unfreeze;      // "progressive_unfreeze": {"stages": N, "unit": "layers"|"experts", "order": ...}
};

struct Recipe {
  std::string name;                  // free text
  uint64_t seed = 0;                 // torch RNG (LoRA init, router noise) and data order
  int64_t threads = 0;               // torch intra-op threads; 0 = leave torch's default
  int64_t checkpoint_every = 0;      // steps between checkpoints; 0 = only at phase ends
  int64_t keep_checkpoints = 2;      // newest checkpoints kept (>= 1)
  int64_t log_every = 1;             // steps between metric records
  int64_t max_bad_steps = 5;         // consecutive NaN/inf steps before stopping
  ProbeMode probe = ProbeMode::Error;// gradient probe before each phase
  double validation_fraction = 0.0;  // documents held out of training (data split)
  double max_bad_fraction = 0.01;    // bad data records tolerated (skipped with a warning); above: an error
  bool allow_long_seq = false;       // seq_len beyond max_position_embeddings (RoPE extrapolation) by choice
  std::string packing = "concat";    // "concat" | "per-document"
  std::string precision = "fp32";    // "fp32", or "bf16": model in bf16, trained tensors as fp32 masters
  std::vector<Phase> phases;
};

// Parses and validates; `label` (file name) prefixes every error. Unknown keys are errors.
// A top-level "defaults" object is merged under every phase (JSON merge patch).
Recipe parse_recipe(const nlohmann::json& json, const std::string& label);
// Reads a recipe file (JSON). `raw` (optional) receives the parsed JSON, stored in run directories.
Recipe load_recipe(const std::filesystem::path& path, nlohmann::json* raw = nullptr);

const char* to_string(Method method);
const char* to_string(OptimizerKind kind);
const char* to_string(ScheduleKind kind);
const char* to_string(KdDivergence divergence);

}  // namespace moeforge::train
