// `moeforge grow`: append expert clones to every MoE layer of a MoE checkpoint (existing indices
// never move), widen the router with rows derived from the source rows, update num_experts, and
// record which new index cloned which source in moeforge_grow.json (training's new_experts selector).
//
// Router offsets (documented choice). Softmax-then-top-k routers without a bias (Mixtral, Qwen*-MoE,
// OLMoE) can only copy the row: clone and source get the same logit, so at init they tie and, when
// both are picked, the source's function gets twice its weight (renormalised) or the mass of a
// displaced expert (not renormalised). Routers with a bias (GPT-OSS: top-k on logits, softmax over
// the k) get --offset split: a source cloned m times and its clones all take bias - log(m+1), so
// their exp-logits sum to the source's and, whenever they are picked together, the softmax over the
// k gives exactly the original combine weights; only the experts they displace from the top-k differ.
// --offset auto (default) = split where the router has a bias, none elsewhere.
// Exact starts (documented in `grow --help` and docs/PIPELINE.md, measured by tests/parity/test_surgery_grow.py):
// --router-bias old:V with V larger than any score gap keeps the clones out of the top-k at init
// (V = 1 for probabilities, ~50 for GPT-OSS logits: much larger values cost float32 resolution and
// can reorder the old experts).
//   GPT-OSS (top-k on logits): --offset none --router-bias old:50 -> 0 (the clones never enter the softmax over the k).
//   DeepSeek-V3 (sigmoid, independent scores): old:1 -> 0 when routing is not group-limited
//     (appending experts regroups the contiguous groups otherwise).
//   Renormalised softmax (Mixtral, Qwen3-MoE with norm_topk_prob): old:1 -> float rounding only
//     (<= 3e-7): the clones' probability mass joins the softmax denominator and cancels in the
//     renormalisation only mathematically.
//   Softmax without renormalisation (OLMoE, Qwen2-MoE default): no exact start; the clones keep
//     their share of the softmax denominator.
// Clones are exact byte copies of their source (MXFP4 stays MXFP4 unless --dequantize).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "surgery/output_plan.h"
#include "surgery/surgery_options.h"

namespace moeforge::surgery {

struct GrowOptions {
  std::filesystem::path source, out;
  std::string clone;                 // "L:E[,L:E..]" or "*:E" (every MoE layer)
  std::filesystem::path plan;        // or a plan file (plan.h) with "clone"
  double router_noise = 0.01;        // clone rows: + N(0, (noise * rms(source row))^2)
  CloneOffset offset = CloneOffset::Auto;  // auto | split | none (split needs a router bias: GPT-OSS)
  // Selection-only bias, stored as mlp.moeforge_selection_bias [E'] + "moeforge_selection_bias":
  // true in config.json (arch/moeforge_extensions.h): "old:V" adds V to the old experts' selection
  // scores (anti-collapse), "new:V" to the clones' (force-route). It stays in the model (training
  // does not remove it); outputs carry remote code that applies it in transformers
  // (surgery/remote_code.h), and merge-deltas --drop-selection-bias removes it. Units:
  // probabilities (softmax routers) or logits (GPT-OSS).
  SelectionBiasSpec router_bias;
  bool dequantize = false;           // MXFP4 -> bf16 fused interleaved (whole model)
  uint64_t seed = 0;
  bool verify = true;                // measure and report the max logit difference
  ExecuteOptions execute;
};

struct GrowResult {
  std::filesystem::path written;
  int64_t experts_before = 0, experts_after = 0;
  double max_logit_diff = -1;
};

GrowResult grow(const GrowOptions& options);

// "L:E[,L:E]" / "*:E" -> layer -> clone sources (in order), for the spec's MoE layers.
std::map<int64_t, std::vector<int64_t>> parse_clone_list(const std::string& text, const std::vector<bool>& is_moe);

}  // namespace moeforge::surgery
