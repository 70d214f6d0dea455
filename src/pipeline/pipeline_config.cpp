#include "pipeline/pipeline_config.h"

#include "common/hf_cache.h"

#include "common/error.h"
#include "common/strings.h"
#include "data/data_spec.h"
#include "io/checkpoint_store.h"
#include "io/json_fields.h"
#include "io/toml.h"
#include "model/device.h"

namespace moeforge::pipeline {
namespace fs = std::filesystem;
namespace {

// The pipeline's field reader is the recipes' (io/json_fields.h), rooted at "the config".
JsonFields fields(const nlohmann::json& object, const std::string& where, const std::string& label) {
  return JsonFields(object, label, where, "the config");
}

// Resolves a path against the config file's directory (data specs: data::resolve_data_spec); a
// model id that is no such path but is in the local Hugging Face cache becomes its snapshot.
fs::path resolve(const fs::path& base_dir, const std::string& text) {
  fs::path p(text);
  const fs::path local = p.is_absolute() ? p : (base_dir / p).lexically_normal();
  std::error_code ec;
  if (!fs::exists(local, ec))
    if (auto cached = find_in_hub_cache(text, HubKind::Model)) return *cached;
  return local;
}

}  // namespace

PipelineConfig parse_pipeline_config(const nlohmann::json& json, const fs::path& config_path) {
  const std::string label = config_path.string();
  const fs::path dir = config_path.has_parent_path() ? config_path.parent_path() : fs::path(".");
  PipelineConfig c;
  c.config_path = config_path;
  JsonFields top = fields(json, "", label);

  auto string_of = [&](const char* key) { return top.string(key, ""); };
  const std::string base = string_of("base");
  if (base.empty()) top.bad("base", "is required (the dense or MoE model directory to start from)");
  c.base = resolve(dir, base);
  const std::string tokenizer = string_of("tokenizer");
  c.tokenizer = tokenizer.empty() ? c.base : resolve(dir, tokenizer);
  const std::string data = string_of("data");
  if (data.empty()) top.bad("data", "is required (a data spec: file, directory or mixture)");
  c.data = data::resolve_data_spec(dir, data);
  const std::string eval_data = string_of("eval_data");
  c.eval_data = eval_data.empty() ? c.data : data::resolve_data_spec(dir, eval_data);
  c.seed = top.unsigned_integer("seed", c.seed);
  c.device = top.string("device", c.device);
  model::parse_device(c.device, label + ": device:");  // fails here, before any stage, on a machine without it
  c.model_name = top.string("model_name", c.model_name);
  c.base_model_id = top.string("base_model_id", "");
  if (!c.base_model_id.empty() && (c.base_model_id.find('/') == std::string::npos || !looks_like_hub_id(c.base_model_id)))
    top.bad("base_model_id", "'" + c.base_model_id + "' is not a Hub repo id (org/name)");
  c.report = top.boolean("report", c.report);

  auto object_or_true = [&](const std::string& key) -> nlohmann::json {
    const auto& v = top.raw(key);
    if (v.is_boolean()) {
      if (!v.get<bool>()) return nullptr;
      return nlohmann::json::object();
    }
    return v;
  };

  if (top.has("stats")) {
    auto j = object_or_true("stats");
    if (!j.is_null()) {
      JsonFields f = fields(j, "stats", label);
      StatsStage s;
      s.tokens = f.integer("tokens", s.tokens, 1);
      s.block_size = f.integer("block_size", s.block_size, 2);
      s.batch_size = f.integer("batch_size", s.batch_size, 1);
      f.finish();
      c.stats = s;
      c.analyze = AnalyzeStage{};
    }
  }
  if (top.has("analyze")) {
    if (!c.stats) top.bad("analyze", "needs a \"stats\" stage to analyse");
    JsonFields f = fields(top.raw("analyze"), "analyze", label);
    AnalyzeStage a;
    a.clone_min_usage = f.number("clone_min_usage", a.clone_min_usage, 0.0);
    a.clone_min_entropy = f.number("clone_min_entropy", a.clone_min_entropy, 0.0);
    a.num_new = f.integer("num_new", a.num_new, 0);
    a.max_new = f.integer("max_new", a.max_new, 1);
    f.finish();
    c.analyze = a;
  }

  if (top.has("surgery")) {
    JsonFields s = fields(top.raw("surgery"), "surgery", label);
    if (s.has("upcycle")) {
      JsonFields f = fields(s.raw("upcycle"), "surgery.upcycle", label);
      surgery::UpcycleOptions u;
      u.to = f.string("to", u.to);
      u.num_experts = f.integer("experts", u.num_experts, 2);
      u.top_k = f.integer("top_k", u.top_k, 1);
      if (u.top_k > u.num_experts) f.bad("top_k", cat("must be <= experts (", u.num_experts, ")"));
      u.method = surgery::parse_upcycle_method(f.choice("method", "copy", {"copy", "noise", "drop", "granular"}));
      u.noise_std = f.number("noise_std", u.noise_std, 0.0);
      u.granularity = f.integer("granularity", u.granularity, 1);
      u.router = surgery::parse_router_init(f.choice("router", "zero", {"zero", "normal", "random", "uniform_random"}));
      u.layers = f.string("layers", u.layers);
      f.finish();
      c.upcycle = u;
    }
    if (s.has("grow")) {
      if (c.upcycle) s.bad("grow", "cannot be combined with upcycle (upcycle makes the MoE; grow extends an existing one)");
      JsonFields f = fields(s.raw("grow"), "surgery.grow", label);
      surgery::GrowOptions g;
      g.clone = f.string("clone", kCloneFromPlan);
      if (g.clone.empty()) f.bad("clone", "must be \"plan\" or a clone list like \"0:3,1:5\"");
      g.router_noise = f.number("router_noise", g.router_noise, 0.0);
      g.offset = surgery::parse_clone_offset(f.choice("offset", "auto", {"auto", "split", "none"}));
      g.router_bias = surgery::parse_selection_bias(f.string("router_bias", ""), label + ": " + f.at("router_bias"));
      f.finish();
      if (g.clone == kCloneFromPlan && !c.stats) f.bad("clone", "\"plan\" needs a \"stats\" stage (its analysis chooses the clones)");
      c.grow = g;
    }
    if (s.has("shared_expert")) {
      JsonFields f = fields(s.raw("shared_expert"), "surgery.shared_expert", label);
      surgery::SharedExpertOptions e;
      e.init = surgery::parse_shared_init(f.string("init", "mean"), label + ": " + f.at("init"));
      e.scale = f.number("scale", e.scale, 0.0);
      e.gate = surgery::parse_shared_gate(f.choice("gate", "fixed", {"fixed", "learned", "sigmoid"}));
      f.finish();
      c.shared_expert = e;
    }
    s.finish();
  }

  if (top.has("recipe")) {
    const auto& r = top.raw("recipe");
    if (r.is_string()) {
      const fs::path recipe_path = resolve(dir, r.get<std::string>());
      if (!fs::exists(recipe_path)) top.bad("recipe", "'" + r.get<std::string>() + "': no such file (" + recipe_path.string() + ")");
      c.recipe = read_config_file(recipe_path);  // JSON or TOML
      c.recipe_label = recipe_path.string();
    } else if (r.is_object()) {
      c.recipe = r;
      c.recipe_label = label + ": recipe";
    } else {
      top.bad("recipe", "must be a recipe file path or an inline recipe object");
    }
  }

  if (top.has("distill")) {
    auto j = object_or_true("distill");
    if (!j.is_null()) {
      if (c.recipe.is_null()) top.bad("distill", "needs a recipe (the training it distils)");
      JsonFields f = fields(j, "distill", label);
      DistillStage d;
      const std::string teacher = f.string("teacher", "");
      d.teacher = teacher.empty() ? c.base : resolve(dir, teacher);
      if (f.has("cache")) {
        const auto& v = f.raw("cache");
        if (v.is_boolean()) {
          d.cache = v.get<bool>();
        } else {
          JsonFields k = fields(v, "distill.cache", label);
          d.cache = true;
          d.top_k = k.integer("top_k", d.top_k, 1);
          d.router_top_k = k.integer("router_top_k", d.router_top_k, 0);
          d.batch_size = k.integer("batch_size", d.batch_size, 1);
          d.codec = k.string("codec", d.codec);
          if (d.codec != "compact" && d.codec != "bf16") k.bad("codec", "is '" + d.codec + "'; want compact or bf16");
          k.finish();
        }
      }
      f.finish();
      c.distill = d;
    }
  }

  if (top.has("eval")) {
    JsonFields f = fields(top.raw("eval"), "eval", label);
    c.eval.block_size = f.integer("block_size", c.eval.block_size, 2);
    c.eval.batch_size = f.integer("batch_size", c.eval.batch_size, 1);
    c.eval.max_blocks = f.integer("max_blocks", c.eval.max_blocks, 0);
    c.eval.validation_fraction = f.number("validation_fraction", c.eval.validation_fraction, 0.0, true);
    if (c.eval.validation_fraction >= 1.0) f.bad("validation_fraction", "must be < 1");
    f.finish();
  }
  if (top.has("export")) {
    JsonFields f = fields(top.raw("export"), "export", label);
    c.export_stage.remote_code = f.boolean("remote_code", c.export_stage.remote_code);
    c.export_stage.drop_selection_bias = f.boolean("drop_selection_bias", c.export_stage.drop_selection_bias);
    if (f.has("push")) {
      const auto& push = f.raw("push");
      if (push.is_string()) {
        c.export_stage.push_repo = push.get<std::string>();
      } else {
        JsonFields p = fields(push, "export.push", label);
        c.export_stage.push_repo = p.string("repo", "");
        c.export_stage.push_revision = p.string("revision", "");
        c.export_stage.push_private = p.boolean("private", false);
        if (c.export_stage.push_repo.empty()) p.bad("repo", "is required (the Hub repo id, org/name)");
      }
    }
    if (c.export_stage.drop_selection_bias && c.recipe.is_null())
      f.bad("drop_selection_bias", "needs a recipe (the merge stage writes the model without the bias)");
    f.finish();
  }
  top.finish();

  // What is stored in the run directory: the same job with every path made absolute, so a re-run
  // from another working directory is recognised as the same job.
  c.raw = json;
  c.raw.erase("device");  // the same job may resume on another device
  c.raw["base"] = c.base.string();
  c.raw["tokenizer"] = c.tokenizer.string();
  c.raw["data"] = c.data;
  c.raw["eval_data"] = c.eval_data;
  if (!c.recipe.is_null()) c.raw["recipe"] = c.recipe;
  if (c.distill) {
    nlohmann::json d = json["distill"].is_object() ? json["distill"] : nlohmann::json::object();
    d["teacher"] = c.distill->teacher.string();
    c.raw["distill"] = d;
  }
  return c;
}

PipelineConfig load_pipeline_config(const fs::path& path) {
  return parse_pipeline_config(read_config_file(path), path);  // JSON or TOML
}

}  // namespace moeforge::pipeline
