#include "pipeline/pipeline_config.h"

#include <set>

#include "common/error.h"
#include "common/strings.h"
#include "data/data_spec.h"
#include "io/checkpoint_store.h"
#include "io/toml.h"
#include "model/device.h"

namespace moeforge::pipeline {
namespace fs = std::filesystem;
namespace {

// Reads one JSON object's fields by name, naming "<file>: <path>.<key>" in every error, and
// rejecting keys nobody asked for (typos must not silently fall back to defaults).
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string where, std::string label)
      : object_(object), where_(std::move(where)), label_(std::move(label)) {
    if (!object_.is_object()) fail(label_, ": ", where_.empty() ? "the config" : where_, ": must be an object");
  }

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail(label_, ": ", path(key), ": ", what);
  }
  std::string path(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }
  bool has(const std::string& key) {
    seen_.insert(key);
    return object_.contains(key) && !object_.at(key).is_null();
  }
  const nlohmann::json& at(const std::string& key) { seen_.insert(key); return object_.at(key); }

  void read(const std::string& key, std::string& value) {
    if (!has(key)) return;
    if (!object_.at(key).is_string()) bad(key, "must be a string");
    value = object_.at(key).get<std::string>();
  }
  void read(const std::string& key, double& value, double min, bool min_exclusive = false) {
    if (!has(key)) return;
    if (!object_.at(key).is_number()) bad(key, "must be a number");
    value = object_.at(key).get<double>();
    if (min_exclusive ? !(value > min) : !(value >= min)) bad(key, cat("must be ", min_exclusive ? "> " : ">= ", min));
  }
  void read(const std::string& key, int64_t& value, int64_t min) {
    if (!has(key)) return;
    const auto& v = object_.at(key);
    if (!v.is_number_integer()) bad(key, "must be an integer");
    value = v.get<int64_t>();
    if (value < min) bad(key, cat("must be >= ", min));
  }
  void read(const std::string& key, uint64_t& value) {
    if (!has(key)) return;
    const auto& v = object_.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0) bad(key, "must be a non-negative integer");
    value = v.get<uint64_t>();
  }
  void read(const std::string& key, bool& value) {
    if (!has(key)) return;
    if (!object_.at(key).is_boolean()) bad(key, "must be true or false");
    value = object_.at(key).get<bool>();
  }
  void one_of(const std::string& key, const std::string& value, std::initializer_list<const char*> allowed) const {
    for (const char* a : allowed) if (value == a) return;
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    bad(key, cat("'", value, "' is not one of ", list));
  }
  // Call last: any key not read is a typo or an option this version does not have.
  void no_unknown_keys() const {
    for (const auto& [key, value] : object_.items())
      if (!seen_.count(key)) fail(label_, ": ", path(key), ": unknown key");
  }

 private:
  const nlohmann::json& object_;
  std::string where_, label_;
  std::set<std::string> seen_;
};

// Resolves a path against the config file's directory (data specs: data::resolve_data_spec).
fs::path resolve(const fs::path& base_dir, const std::string& text) {
  fs::path p(text);
  return p.is_absolute() ? p : (base_dir / p).lexically_normal();
}

}  // namespace

PipelineConfig parse_pipeline_config(const nlohmann::json& json, const fs::path& config_path) {
  const std::string label = config_path.string();
  const fs::path dir = config_path.has_parent_path() ? config_path.parent_path() : fs::path(".");
  PipelineConfig c;
  c.config_path = config_path;
  Fields top(json, "", label);

  auto string_of = [&](const char* key) {
    std::string value;
    top.read(key, value);
    return value;
  };
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
  top.read("seed", c.seed);
  top.read("device", c.device);
  model::parse_device(c.device, label + ": device:");  // fails here, before any stage, on a machine without it
  top.read("model_name", c.model_name);
  top.read("report", c.report);

  auto object_or_true = [&](const std::string& key) -> nlohmann::json {
    const auto& v = top.at(key);
    if (v.is_boolean()) {
      if (!v.get<bool>()) return nullptr;
      return nlohmann::json::object();
    }
    return v;
  };

  if (top.has("stats")) {
    auto j = object_or_true("stats");
    if (!j.is_null()) {
      Fields f(j, "stats", label);
      StatsStage s;
      f.read("tokens", s.tokens, 1);
      f.read("block_size", s.block_size, 2);
      f.read("batch_size", s.batch_size, 1);
      f.no_unknown_keys();
      c.stats = s;
      c.analyze = AnalyzeStage{};
    }
  }
  if (top.has("analyze")) {
    if (!c.stats) top.bad("analyze", "needs a \"stats\" stage to analyse");
    Fields f(top.at("analyze"), "analyze", label);
    AnalyzeStage a;
    f.read("clone_min_usage", a.clone_min_usage, 0.0);
    f.read("clone_min_entropy", a.clone_min_entropy, 0.0);
    f.read("num_new", a.num_new, 0);
    f.read("max_new", a.max_new, 1);
    f.no_unknown_keys();
    c.analyze = a;
  }

  if (top.has("surgery")) {
    Fields s(top.at("surgery"), "surgery", label);
    if (s.has("upcycle")) {
      Fields f(s.at("upcycle"), "surgery.upcycle", label);
      UpcycleStage u;
      f.read("to", u.to);
      f.read("experts", u.experts, 2);
      f.read("top_k", u.top_k, 1);
      if (u.top_k > u.experts) f.bad("top_k", cat("must be <= experts (", u.experts, ")"));
      f.read("method", u.method);
      f.one_of("method", u.method, {"copy", "noise", "drop", "granular"});
      f.read("noise_std", u.noise_std, 0.0);
      f.read("granularity", u.granularity, 1);
      f.read("router", u.router);
      f.one_of("router", u.router, {"zero", "random"});
      f.read("layers", u.layers);
      f.no_unknown_keys();
      c.upcycle = u;
    }
    if (s.has("grow")) {
      if (c.upcycle) s.bad("grow", "cannot be combined with upcycle (upcycle makes the MoE; grow extends an existing one)");
      Fields f(s.at("grow"), "surgery.grow", label);
      GrowStage g;
      f.read("clone", g.clone);
      if (g.clone.empty()) f.bad("clone", "must be \"plan\" or a clone list like \"0:3,1:5\"");
      f.read("router_noise", g.router_noise, 0.0);
      f.read("router_bias", g.router_bias);
      f.no_unknown_keys();
      if (g.clone == "plan" && !c.stats) f.bad("clone", "\"plan\" needs a \"stats\" stage (its analysis chooses the clones)");
      c.grow = g;
    }
    if (s.has("shared_expert")) {
      Fields f(s.at("shared_expert"), "surgery.shared_expert", label);
      SharedExpertStage e;
      f.read("init", e.init);
      f.read("scale", e.scale, 0.0);
      f.read("gate", e.gate);
      f.one_of("gate", e.gate, {"fixed", "learned", "sigmoid"});
      f.no_unknown_keys();
      c.shared_expert = e;
    }
    s.no_unknown_keys();
  }

  if (top.has("recipe")) {
    const auto& r = top.at("recipe");
    if (r.is_string()) {
      const fs::path recipe_path = resolve(dir, r.get<std::string>());
      c.recipe = read_config_file(recipe_path);  // JSON or TOML
      c.recipe_label = recipe_path.string();
    } else if (r.is_object()) {
      c.recipe = r;
      c.recipe_label = label + ": recipe";
    } else {
      top.bad("recipe", "must be a recipe file path or an inline recipe object");
    }
  }

  if (top.has("eval")) {
    Fields f(top.at("eval"), "eval", label);
    f.read("block_size", c.eval.block_size, 2);
    f.read("batch_size", c.eval.batch_size, 1);
    f.read("max_blocks", c.eval.max_blocks, 0);
    f.read("validation_fraction", c.eval.validation_fraction, 0.0, true);
    if (c.eval.validation_fraction >= 1.0) f.bad("validation_fraction", "must be < 1");
    f.no_unknown_keys();
  }
  top.no_unknown_keys();

  // What is stored in the run directory: the same job with every path made absolute, so a re-run
  // from another working directory is recognised as the same job.
  c.raw = json;
  c.raw.erase("device");  // the same job may resume on another device
  c.raw["base"] = c.base.string();
  c.raw["tokenizer"] = c.tokenizer.string();
  c.raw["data"] = c.data;
  c.raw["eval_data"] = c.eval_data;
  if (!c.recipe.is_null()) c.raw["recipe"] = c.recipe;
  return c;
}

PipelineConfig load_pipeline_config(const fs::path& path) {
  return parse_pipeline_config(read_config_file(path), path);  // JSON or TOML
}

}  // namespace moeforge::pipeline
