#include "pipeline/model_card.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/hf_cache.h"
#include "common/strings.h"
#include "surgery/output_card.h"
#include "arch/remote_code.h"

namespace moeforge::pipeline {
namespace {

std::string describe(const ModelSpec& s) {
  std::ostringstream out;
  out << s.model_type << ", " << s.num_layers << " layers, hidden " << s.hidden_size;
  if (s.has_moe())
    out << ", " << s.moe.num_experts << " experts (top-" << s.moe.top_k << ", width " << s.moe.moe_intermediate_size << ")";
  else
    out << ", dense MLP width " << s.intermediate_size;
  if (s.moe.num_shared_experts > 0) out << " + shared expert (width " << s.moe.shared_intermediate_size << ")";
  return out.str();
}

std::string number(const nlohmann::json& j, const char* key, const char* format) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, j.at(key).get<double>());
  return buf;
}

// YAML strings: quote and escape so any path or name is valid front matter.
std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (ch == '\n') { out += "\\n"; continue; }
    out += ch;
  }
  return out + "\"";
}

void surgery_section(const nlohmann::json& config, std::ostringstream& out) {
  if (!config.contains("surgery")) {
    out << "- Surgery: none (the base architecture is kept)\n";
    return;
  }
  for (const auto& [kind, options] : config.at("surgery").items())
    out << "- Surgery `" << kind << "`: `" << options.dump() << "`\n";
}

void training_section(const nlohmann::json& config, std::ostringstream& out) {
  if (!config.contains("recipe") || !config.at("recipe").is_object()) {
    out << "- Training: none\n";
    return;
  }
  const auto& recipe = config.at("recipe");
  out << "- Training recipe `" << recipe.value("name", std::string("recipe")) << "`, phases:\n\n";
  out << "| phase | steps | trains | method |\n|---|---:|---|---|\n";
  int i = 0;
  for (const auto& phase : recipe.value("phases", nlohmann::json::array())) {
    std::string select;
    for (const auto& term : phase.value("select", nlohmann::json::array())) select += (select.empty() ? "" : ", ") + term.get<std::string>();
    out << "| " << phase.value("name", "phase" + std::to_string(i)) << " | " << phase.value("steps", 0) << " | " << select
        << " | " << phase.value("method", std::string("full")) << " |\n";
    ++i;
  }
  out << "\n";
}

void eval_section(const nlohmann::json& eval, std::ostringstream& out) {
  if (!eval.is_object() || !eval.contains("models")) {
    out << "No evaluation was run.\n";
    return;
  }
  out << "Measured by `moeforge pipeline` on the " << eval.value("split", std::string("?")) << " split of `"
      << std::filesystem::path(eval.value("data", std::string())).filename().string() << "` ("
      << eval.value("blocks", 0) << " blocks of " << eval.value("block_size", 0) << " tokens).\n\n";
  out << "| model | loss (nats/token) | perplexity | balance | balanced ppl | mean KL vs base |\n"
         "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& m : eval.at("models")) {
    const auto kl = m.contains("baseline") ? number(m.at("baseline"), "mean_kl", "%.4f") : std::string("–");
    out << "| " << m.value("label", std::string("?")) << " | " << number(m, "loss", "%.4f") << " | "
        << number(m, "perplexity", "%.3f") << " | " << number(m, "balance_score", "%.3f") << " | "
        << number(m, "balanced_perplexity", "%.3f") << " | " << kl << " |\n";
  }
  const auto& last = eval.at("models").back();
  if (last.contains("domains") && last.at("domains").size() > 1) {
    out << "\nPer domain (" << last.value("label", std::string()) << "):\n\n| domain | loss | perplexity | tokens |\n|---|---:|---:|---:|\n";
    for (const auto& [domain, d] : last.at("domains").items())
      out << "| " << domain << " | " << number(d, "loss", "%.4f") << " | " << number(d, "perplexity", "%.3f") << " | "
          << d.value("tokens", 0) << " |\n";
  }
}

// How to load it: with moeforge's remote code where transformers' family cannot express the model.
void loading_section(const nlohmann::json& model_config, std::ostringstream& out) {
  out << "## Loading\n\n";
  const auto features = features_needing_remote_code(model_config);
  if (uses_remote_code(model_config)) {
    const std::string model_type = model_config.value("model_type", std::string());
    if (model_type == "gpt_neo_moe") out << "transformers has no class for moeforge's GPT-Neo MoE";
    else out << "transformers' `" << model_type << "` classes cannot express " << join(features, " and ");
    out << ": this checkpoint ships `configuration_moeforge.py` and `modeling_moeforge.py` "
        << "(transformers' own classes plus only that, computed as moeforge does; `auto_map` in config.json), so it "
        << "loads with `trust_remote_code=True`:\n\n";
  } else if (!features.empty()) {
    out << "Written without remote code: transformers loads the plain `" << model_config.value("model_type", std::string())
        << "` and ignores " << join(features, " and ") << ", so its logits differ from moeforge's.\n\n";
  } else {
    out << "A plain transformers checkpoint:\n\n";
  }
  out << "```python\nmodel_dir = \"path/to/this/directory\"\n"
      << loading_code(model_config, "model_dir") << "```\n\n";
}

// A data spec with each entry's directories dropped ("/x/code.jsonl:0.4,/y/prose" -> "code.jsonl:0.4,prose").
std::string file_names(const std::string& spec) {
  std::string out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    std::string entry = spec.substr(start, comma - start);
    while (!entry.empty() && entry.back() == '/') entry.pop_back();
    const size_t slash = entry.rfind('/');
    out += (out.empty() ? "" : ",") + (slash == std::string::npos ? entry : entry.substr(slash + 1));
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string model_card_markdown(const ModelCard& card) {
  std::ostringstream out;
  const std::string base = card.config.value("base", std::string());
  // The Hub's conventions: base_model only as a repo id (a base in the Hugging Face cache), the
  // base card's licence carried, no absolute local paths.
  const std::string given_id = card.config.value("base_model_id", std::string());
  const std::string base_id = given_id.empty() ? hub_id_of(base) : given_id;
  const std::string base_shown = base_id.empty() ? std::filesystem::path(base).lexically_normal().filename().string() : base_id;
  out << "---\nlibrary_name: transformers\n";
  if (!base_id.empty()) out << "base_model: " << yaml_quote(base_id) << "\nbase_model_relation: finetune\n";
  {
    std::ifstream in(std::filesystem::path(base) / "README.md", std::ios::binary);
    const std::string base_card(std::istreambuf_iterator<char>(in), {});
    for (const char* key : {"license", "license_name", "license_link"})
      if (const std::string v = surgery::front_matter_value(base_card, key); !v.empty()) out << key << ": " << yaml_quote(v) << "\n";
  }
  out << "tags:\n- moeforge\n" << (card.spec.has_moe() ? "- moe\n- mixture-of-experts\n" : "") << "---\n\n";
  out << "# " << card.name << "\n\n";
  out << "Made by `moeforge pipeline` (moeforge " << card.version << ").\n\n## Method\n\n";
  out << "- Base model: `" << base_shown << "` (" << describe(card.base_spec) << ")\n";
  out << "- This model: " << describe(card.spec) << "\n";
  surgery_section(card.config, out);
  training_section(card.config, out);
  out << "- Data: `" << file_names(card.config.value("data", std::string())) << "`\n\n";
  loading_section(card.model_config, out);
  out << "## Evaluation\n\n";
  eval_section(card.eval, out);
  return out.str();
}

}  // namespace moeforge::pipeline
