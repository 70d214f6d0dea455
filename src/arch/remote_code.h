// Outputs that transformers loads with the function moeforge computes. What a family cannot express
// natively (a moeforge shared expert on Mixtral / Qwen3-MoE / OLMoE / GPT-OSS, a selection-only
// router bias, arch/moeforge_extensions.h) is written in Hugging Face's custom-architecture
// convention: "auto_map" in config.json plus configuration_moeforge.py / modeling_moeforge.py beside
// the weights (src/arch/remote_code/*.py, embedded at build time), which subclass transformers'
// own family classes and add only the extension, so
// AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True) gives moeforge's logits.
// Without remote code (--no-remote-code) the plain family is written and what transformers will
// ignore is reported.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moeforge {

// The names of the files apply_remote_code writes (never copied from an input: always regenerated).
bool is_remote_code_file(const std::string& filename);

// What of `config` transformers' plain family ignores, one phrase each (empty: nothing).
std::vector<std::string> features_needing_remote_code(const nlohmann::json& config);

// Sets config.json's "auto_map" to moeforge's classes when remote code is needed and enabled (and
// removes a moeforge auto_map that is no longer needed) and returns the files to write beside the
// weights (name -> text). With `enabled` false and features present, returns nothing and the
// caller reports features_needing_remote_code (see note_ignored_by_transformers).
std::map<std::string, std::string> apply_remote_code(nlohmann::json& config, bool enabled);

// "moeforge: note: --no-remote-code: transformers will load ... and ignore ..." (empty when nothing is ignored).
std::string note_ignored_by_transformers(const nlohmann::json& config);

// True when config.json carries moeforge's auto_map (loading needs trust_remote_code=True).
bool uses_remote_code(const nlohmann::json& config);

// The Python that loads the model the way moeforge computes it (for model cards); `path_expression`
// is a Python expression (a quoted path or a variable name).
std::string loading_code(const nlohmann::json& config, const std::string& path_expression);

}  // namespace moeforge
