// Surgery output model cards (output_card.h).
#include "surgery/output_card.h"

#include <filesystem>
#include <sstream>

#include "common/hf_cache.h"
#include "arch/remote_code.h"

namespace moeforge::surgery {

namespace {

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

// "mixtral, 2 layers, hidden 32, 8 experts (top-2)" from config.json's own keys.
std::string architecture(const nlohmann::json& c) {
  std::ostringstream out;
  out << c.value("model_type", std::string("?"));
  for (const char* key : {"num_hidden_layers", "num_layers", "n_layer"})
    if (c.contains(key) && c[key].is_number_integer()) {
      out << ", " << c[key].get<int64_t>() << " layers";
      break;
    }
  if (c.contains("hidden_size") && c["hidden_size"].is_number_integer()) out << ", hidden " << c["hidden_size"].get<int64_t>();
  for (const char* key : {"num_local_experts", "num_experts", "n_routed_experts"})
    if (c.contains(key) && c[key].is_number_integer()) {
      out << ", " << c[key].get<int64_t>() << " experts";
      if (c.contains("num_experts_per_tok") && c["num_experts_per_tok"].is_number_integer())
        out << " (top-" << c["num_experts_per_tok"].get<int64_t>() << ")";
      break;
    }
  return out.str();
}

}  // namespace

std::string front_matter_value(const std::string& markdown, const std::string& key) {
  std::istringstream in(markdown);
  std::string line;
  if (!std::getline(in, line) || line.rfind("---", 0) != 0) return "";
  while (std::getline(in, line)) {
    if (line.rfind("---", 0) == 0) break;
    if (line.rfind(key + ":", 0) != 0) continue;
    std::string v = line.substr(key.size() + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) v = v.substr(1, v.size() - 2);
    return v;
  }
  return "";
}

std::string output_card_markdown(const OutputCard& card, const nlohmann::json& config, const std::string* base_card) {
  const bool remote = uses_remote_code(config);
  const std::string base_name = std::filesystem::path(card.base).lexically_normal().filename().string();
  const std::string base_id = card.base_id.empty() ? hub_id_of(card.base) : card.base_id;
  const std::string shown = base_id.empty() ? (base_name.empty() ? std::string("model") : base_name) : base_id;
  std::ostringstream out;
  out << "---\n"
      << "library_name: transformers\n";
  if (!base_id.empty())
    out << "base_model: " << yaml_quote(base_id) << "\n"
        << "base_model_relation: " << (card.operation == "merge" ? "merge" : "finetune") << "\n";
  if (base_card)
    for (const char* key : {"license", "license_name", "license_link"})
      if (const std::string v = front_matter_value(*base_card, key); !v.empty()) out << key << ": " << yaml_quote(v) << "\n";
  out << "tags:\n  - moe\n  - moeforge\n  - moeforge-" << card.operation << "\n";
  if (remote) out << "  - custom_code\n";
  out << "---\n\n"
      << "# " << shown << ", " << card.operation << "\n\n"
      << "Produced by `moeforge " << card.operation << "` from " << (base_id.empty() ? "the local model `" + shown + "`" : "[" + base_id + "](https://huggingface.co/" + base_id + ")")
      << ": " << card.what << ".\n\n"
      << "- Architecture: " << architecture(config) << "\n"
      << "- Not trained since the surgery: evaluate or train it before use.\n";
  if (base_card)
    out << "- The base model's card is kept as `BASE_MODEL_CARD.md`; its licence and use terms still apply.\n";
  out << "\n## Loading\n\n"
      << (remote ? "transformers' own family cannot express this model; the modeling files beside the weights "
                   "(`auto_map` in config.json) compute what moeforge computes:\n\n"
                 : "transformers loads it with its own family:\n\n")
      << "```python\n" << loading_code(config, "\"PATH\"") << "```\n";
  return out.str();
}

}  // namespace moeforge::surgery
