// The README.md model card of an exported checkpoint: Hugging Face's YAML front matter
// (library_name, base_model, tags) and what was done (surgery, recipe phases) with the eval numbers
// measured in the run, so the checkpoint explains itself wherever it is copied.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "arch/model_spec.h"

namespace moeforge::pipeline {

struct ModelCard {
  std::string name;
  std::string version;       // moeforge version
  nlohmann::json config;     // the pipeline job (paths absolute)
  nlohmann::json eval;       // eval.json of the run (null when absent)
  ModelSpec spec;            // the exported model
  ModelSpec base_spec;       // the model the job started from
  nlohmann::json model_config;  // the exported config.json (auto_map: loaded with remote code)
};

std::string model_card_markdown(const ModelCard& card);

}  // namespace moeforge::pipeline
