// Recipe parsing with the strict field reader (io/json_fields.h): every error reads
// "recipe.json: phases[1].optimizer.lr: must be > 0"; unknown fields are errors.
#include "train/recipe.h"

#include <cmath>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "io/json_fields.h"

namespace moeforge::train {

namespace {

using nlohmann::json;

using Fields = JsonFields;

std::vector<std::string> selector_terms(Fields& f, const std::string& key) {
  if (!f.has(key)) f.error(f.at(key), "required (e.g. [\"router\", \"new_experts\"])");
  const json& v = f.raw(key);
  std::vector<std::string> terms;
  if (v.is_string()) {
    terms.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& t : v) {
      if (!t.is_string()) f.error(f.at(key), "must be a string or a list of strings");
      terms.push_back(t.get<std::string>());
    }
  } else {
    f.error(f.at(key), "must be a string or a list of strings");
  }
  if (terms.empty()) f.error(f.at(key), "must not be empty");
  return terms;
}

void parse_optimizer(Fields f, OptimizerOptions& o) {
  std::string type = f.choice("type", "adamw", {"adamw", "adafactor"});
  o.kind = type == "adamw" ? OptimizerKind::AdamW : OptimizerKind::Adafactor;
  o.lr = f.number("lr", o.lr);
  f.check(o.lr > 0, "lr", "must be > 0");
  if (f.has("betas")) {
    const json& b = f.raw("betas");
    if (!b.is_array() || b.size() != 2 || !b[0].is_number() || !b[1].is_number()) f.error(f.at("betas"), "must be [beta1, beta2]");
    o.beta1 = b[0].get<double>();
    o.beta2 = b[1].get<double>();
    f.check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "betas", "each beta must be in [0, 1)");
  } else if (o.kind == OptimizerKind::Adafactor) {
    o.beta1 = 0.0;
  }
  o.eps = f.number("eps", o.kind == OptimizerKind::Adafactor ? 1e-30 : o.eps);
  f.check(o.eps > 0, "eps", "must be > 0");
  o.weight_decay = f.number("weight_decay", o.weight_decay);
  f.check(o.weight_decay >= 0, "weight_decay", "must be >= 0");
  o.decay_vectors = f.boolean("decay_vectors", o.decay_vectors);
  o.decay_rate = f.number("decay_rate", o.decay_rate);
  f.check(o.decay_rate < 0, "decay_rate", "must be < 0");
  o.clip_threshold = f.number("clip_threshold", o.clip_threshold);
  f.check(o.clip_threshold > 0, "clip_threshold", "must be > 0");
  if (f.has("groups")) {
    const json& groups = f.raw("groups");
    if (!groups.is_array()) f.error(f.at("groups"), "must be a list of {\"select\": ..., \"lr_scale\": ...}");
    for (size_t i = 0; i < groups.size(); ++i) {
      const std::string where = f.at("groups") + "[" + std::to_string(i) + "]";
      Fields group(groups[i], f.label(), where);
      ParamGroup pg;
      pg.select = group.string("select", "");
      pg.lr_scale = group.number("lr_scale", 1.0);
      pg.weight_decay = group.number("weight_decay", -1.0);
      group.finish();
      if (pg.select.empty()) f.error(where + ".select", "required");
      if (!(pg.lr_scale >= 0)) f.error(where + ".lr_scale", "must be >= 0");
      o.groups.push_back(pg);
    }
  }
  f.finish();
}

void parse_schedule(Fields f, ScheduleOptions& s, const std::string& phase_at) {
  std::string type = f.choice("type", "constant", {"constant", "linear", "cosine", "inverse_sqrt", "wsd"});
  s.kind = type == "constant" ? ScheduleKind::Constant
           : type == "linear" ? ScheduleKind::Linear
           : type == "cosine" ? ScheduleKind::Cosine
           : type == "inverse_sqrt" ? ScheduleKind::InverseSqrt
                                     : ScheduleKind::WarmupStableDecay;
  s.warmup_steps = f.integer("warmup_steps", s.warmup_steps);
  f.check(s.warmup_steps >= 0, "warmup_steps", "must be >= 0");
  s.warmup_fraction = f.number("warmup_fraction", s.warmup_fraction);
  f.check(s.warmup_fraction >= 0 && s.warmup_fraction < 1, "warmup_fraction", "must be in [0, 1)");
  f.check(!(s.warmup_steps > 0 && s.warmup_fraction > 0), "warmup_fraction", "give warmup_steps or warmup_fraction, not both");
  s.warmup_max_fraction = f.number("warmup_max_fraction", s.warmup_max_fraction);
  f.check(s.warmup_max_fraction >= 0 && s.warmup_max_fraction <= 1, "warmup_max_fraction", "must be in [0, 1]");
  s.warmup_start = f.number("warmup_start", s.warmup_start);
  f.check(s.warmup_start >= 0 && s.warmup_start <= 1, "warmup_start", "must be in [0, 1]");
  s.min_lr_ratio = f.number("min_lr_ratio", s.min_lr_ratio);
  f.check(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]");
  s.stable_fraction = f.number("stable_fraction", s.stable_fraction);
  f.check(s.stable_fraction >= 0 && s.stable_fraction <= 1, "stable_fraction", "must be in [0, 1]");
  s.decay_shape = f.choice("decay_shape", s.decay_shape, {"cosine", "linear"});
  s.timescale = f.integer("timescale", s.timescale);
  f.check(s.timescale >= 0, "timescale", "must be >= 0");
  f.finish();
}

// A number, or {"start": a, "end": b} changing linearly over the phase; both ends checked by `ok`.
template <typename Ok>
Annealed annealed(Fields& f, const std::string& key, double def, Ok ok, const std::string& what) {
  Annealed a{def, def};
  if (f.has(key) && f.raw(key).is_object()) {
    Fields o = f.object(key);
    if (!o.has("start") || !o.has("end")) o.error(f.at(key), "must be a number or {\"start\": a, \"end\": b}");
    a.start = o.number("start", def);
    a.end = o.number("end", def);
    o.finish();
  } else {
    a.start = a.end = f.number(key, def);
  }
  f.check(ok(a.start) && ok(a.end), key, what);
  return a;
}

void parse_distill(Fields d, DistillOptions& o) {
  o.enabled = true;
  o.teacher = d.string("teacher", "");
  o.teacher_cache = d.string("teacher_cache", "");
  d.check(o.teacher.empty() || o.teacher_cache.empty(), "teacher_cache", "give \"teacher\" or \"teacher_cache\", not both");
  const std::string div = d.choice("divergence", "forward_kl", {"forward_kl", "reverse_kl", "jsd"});
  o.divergence = div == "forward_kl" ? KdDivergence::ForwardKl : div == "reverse_kl" ? KdDivergence::ReverseKl : KdDivergence::Jsd;
  o.beta = d.number("beta", o.beta);
  d.check(o.beta >= 0 && o.beta <= 1, "beta", "must be in [0, 1]");
  d.check(d.has("beta") ? o.divergence == KdDivergence::Jsd : true, "beta", "only used with \"divergence\": \"jsd\"");
  auto positive = [](double v) { return v > 0; };
  auto non_negative = [](double v) { return v >= 0; };
  o.temperature = annealed(d, "temperature", 1.0, positive, "must be > 0");
  o.weight = annealed(d, "weight", 1.0, non_negative, "must be >= 0");
  o.ce_weight = annealed(d, "ce_weight", 1.0, non_negative, "must be >= 0");
  o.router_weight = annealed(d, "router_weight", 0.0, non_negative, "must be >= 0");
  o.router_temperature = d.number("router_temperature", o.router_temperature);
  d.check(o.router_temperature > 0, "router_temperature", "must be > 0");
  o.top_k = d.integer("top_k", o.top_k);
  d.check(o.top_k >= 0, "top_k", "must be >= 0 (0 = the full distribution)");
  o.chunk_tokens = d.integer("chunk_tokens", o.chunk_tokens);
  d.check(o.chunk_tokens >= 0, "chunk_tokens", "must be >= 0 (0 = automatic)");
  d.finish();
}

Phase parse_phase(const json& j, const std::string& label, size_t index) {
  const std::string at = "phases[" + std::to_string(index) + "]";
  Fields f(j, label, at);
  Phase p;
  p.name = f.string("name", "phase" + std::to_string(index));
  if (!f.has("steps")) f.error(f.at("steps"), "required");
  p.steps = f.integer("steps", 0);
  f.check(p.steps > 0, "steps", "must be > 0");
  p.batch_size = f.integer("batch_size", p.batch_size);
  f.check(p.batch_size > 0, "batch_size", "must be > 0");
  p.seq_len = f.integer("seq_len", p.seq_len);
  f.check(p.seq_len >= 2, "seq_len", "must be >= 2");
  p.grad_accum = f.integer("grad_accum", p.grad_accum);
  f.check(p.grad_accum > 0, "grad_accum", "must be > 0");
  p.data = f.string("data", "");
  p.select = selector_terms(f, "select");
  p.method = f.choice("method", "full", {"full", "lora"}) == "full" ? Method::Full : Method::Lora;
  {
    Fields l = f.object("lora");
    p.lora.rank = l.integer("rank", p.lora.rank);
    l.check(p.lora.rank > 0, "rank", "must be > 0");
    p.lora.alpha = l.number("alpha", p.lora.alpha);
    l.check(p.lora.alpha > 0, "alpha", "must be > 0");
    p.lora.dropout = l.number("dropout", p.lora.dropout);
    l.check(p.lora.dropout >= 0 && p.lora.dropout < 1, "dropout", "must be in [0, 1)");
    l.check(p.lora.dropout == 0, "dropout",
            "only 0 is supported (adapters are applied as merged weight deltas; see docs/TRAINING.md)");
    p.lora.router = l.boolean("router", p.lora.router);
    l.finish();
  }
  {
    Fields r = f.object("routing");
    if (r.has("force_route") && r.raw("force_route").is_boolean()) {
      p.routing.force_route = r.raw("force_route").get<bool>() ? "selected" : "";
    } else {
      p.routing.force_route = r.string("force_route", "");
    }
    p.routing.force_route_bias = r.number("force_route_bias", p.routing.force_route_bias);
    r.check(p.routing.force_route_bias > 0, "force_route_bias", "must be > 0");
    p.routing.router_noise_std = r.number("router_noise_std", p.routing.router_noise_std);
    r.check(p.routing.router_noise_std >= 0, "router_noise_std", "must be >= 0");
    p.routing.aux_free_gamma = r.number("aux_free_gamma", p.routing.aux_free_gamma);
    r.check(p.routing.aux_free_gamma >= 0, "aux_free_gamma", "must be >= 0");
    r.finish();
  }
  {
    Fields l = f.object("losses");
    p.losses.lb_coef = l.number("lb_coef", p.losses.lb_coef);
    l.check(p.losses.lb_coef >= 0, "lb_coef", "must be >= 0");
    p.losses.z_coef = l.number("z_coef", p.losses.z_coef);
    l.check(p.losses.z_coef >= 0, "z_coef", "must be >= 0");
    if (l.has("distill")) {
      if (!l.raw("distill").is_object()) l.bad("distill", "must be an object, e.g. {\"teacher\": \"DIR\", \"temperature\": 2}");
      parse_distill(l.object("distill"), p.losses.distill);
    }
    l.finish();
  }
  if (f.has("sfa")) {
    Fields s = f.object("sfa");
    p.sfa.enabled = true;
    p.sfa.alpha = s.number("alpha", p.sfa.alpha);
    s.check(p.sfa.alpha >= 0 && p.sfa.alpha < 1, "alpha", "must be in [0, 1)");
    p.sfa.every = s.integer("every", p.sfa.every);
    s.check(p.sfa.every >= 0, "every", "must be >= 0 (0 = at each checkpoint)");
    s.finish();
  }
  if (f.has("progressive_unfreeze")) {
    Fields u = f.object("progressive_unfreeze");
    p.unfreeze.stages = u.integer("stages", 0);
    u.check(p.unfreeze.stages >= 2, "stages", "must be >= 2");
    u.check(p.unfreeze.stages <= p.steps, "stages", "must be <= the phase's steps");
    p.unfreeze.experts = u.choice("unit", "layers", {"layers", "experts"}) == "experts";
    p.unfreeze.top_down = u.choice("order", "top_down", {"top_down", "bottom_up"}) == "top_down";
    u.finish();
  }
  parse_optimizer(f.object("optimizer"), p.optimizer);
  parse_schedule(f.object("schedule"), p.schedule, at);
  p.clip_grad_norm = f.number("clip_grad_norm", p.clip_grad_norm);
  f.check(p.clip_grad_norm >= 0, "clip_grad_norm", "must be >= 0");
  f.finish();
  return p;
}

}  // namespace

const char* to_string(Method m) { return m == Method::Full ? "full" : "lora"; }
const char* to_string(OptimizerKind k) { return k == OptimizerKind::AdamW ? "adamw" : "adafactor"; }
const char* to_string(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::InverseSqrt: return "inverse_sqrt";
    case ScheduleKind::WarmupStableDecay: return "wsd";
  }
  return "?";
}

const char* to_string(KdDivergence d) {
  return d == KdDivergence::ForwardKl ? "forward_kl" : d == KdDivergence::ReverseKl ? "reverse_kl" : "jsd";
}

Recipe parse_recipe(const json& j, const std::string& label) {
  Fields f(j, label, "");
  Recipe r;
  r.name = f.string("name", "");
  r.seed = static_cast<uint64_t>(f.integer("seed", 0));
  r.threads = f.integer("threads", r.threads);
  f.check(r.threads >= 0, "threads", "must be >= 0");
  r.checkpoint_every = f.integer("checkpoint_every", r.checkpoint_every);
  f.check(r.checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
  r.keep_checkpoints = f.integer("keep_checkpoints", r.keep_checkpoints);
  f.check(r.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1");
  r.log_every = f.integer("log_every", r.log_every);
  f.check(r.log_every >= 1, "log_every", "must be >= 1");
  r.max_bad_steps = f.integer("max_bad_steps", r.max_bad_steps);
  f.check(r.max_bad_steps >= 1, "max_bad_steps", "must be >= 1");
  std::string probe = f.choice("probe", "error", {"error", "warn", "off"});
  r.probe = probe == "error" ? ProbeMode::Error : probe == "warn" ? ProbeMode::Warn : ProbeMode::Off;
  r.validation_fraction = f.number("validation_fraction", r.validation_fraction);
  f.check(r.validation_fraction >= 0 && r.validation_fraction < 1, "validation_fraction", "must be in [0, 1)");
  r.allow_long_seq = f.boolean("allow_long_seq", r.allow_long_seq);
  r.max_bad_fraction = f.number("max_bad_fraction", r.max_bad_fraction);
  f.check(r.max_bad_fraction >= 0 && r.max_bad_fraction <= 1, "max_bad_fraction", "must be in [0, 1]");
  r.packing = f.choice("packing", r.packing, {"concat", "per-document"});
  r.precision = f.choice("precision", r.precision, {"fp32", "bf16"});
  json defaults = json::object();
  if (f.has("defaults")) {
    defaults = f.raw("defaults");
    if (!defaults.is_object()) f.error("defaults", "must be an object of phase fields");
  }
  if (!f.has("phases")) f.error("phases", "required (a list of phases)");
  const json& phases = f.raw("phases");
  if (!phases.is_array() || phases.empty()) f.error("phases", "must be a non-empty list");
  f.finish();
  for (size_t i = 0; i < phases.size(); ++i) {
    if (!phases[i].is_object()) f.error("phases[" + std::to_string(i) + "]", "must be an object");
    json merged = defaults;
    merged.merge_patch(phases[i]);
    r.phases.push_back(parse_phase(merged, label, i));
  }
  return r;
}

Recipe load_recipe(const std::filesystem::path& path, json* raw) {
  json j = read_json_file(path);
  if (raw) *raw = j;
  return parse_recipe(j, path.filename().string());
}

}  // namespace moeforge::train
