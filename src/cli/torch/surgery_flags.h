// Flags every surgery subcommand shares (--out, --dry-run, --overwrite, --max-shard-size,
// --no-remote-code, --base-model-id) and the ExecuteOptions they fill.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "common/error.h"
#include "common/hf_cache.h"
#include "surgery/output_plan.h"

namespace moeforge::cli {

struct SurgeryFlags {
  std::string out;
  bool dry_run = false;
  bool overwrite = false;
  double max_shard_gb = 5.0;
  bool no_remote_code = false;
  std::string base_model_id;
  void add_to(CLI::App* app) {
    app->add_option("--out", out, "output model directory (written to a temporary sibling, then renamed)")->required();
    app->add_flag("--dry-run", dry_run, "print the plan (tensors read, written, created, bytes) and write nothing");
    app->add_flag("--overwrite", overwrite, "replace an existing output directory");
    app->add_option("--max-shard-size", max_shard_gb, "shard size cap in GB (default 5)");
    app->add_flag("--no-remote-code", no_remote_code,
                  "write the plain family even where transformers then ignores a moeforge shared expert or selection "
                  "bias (printed); default: auto_map + modeling_moeforge.py, loaded with trust_remote_code=True");
    app->add_option("--base-model-id", base_model_id,
                    "the base's Hub repo id (org/name) for the model card's base_model, when its path does not say "
                    "(a base in the Hugging Face cache names itself)");
  }
  surgery::ExecuteOptions options() const {
    surgery::ExecuteOptions o;
    o.dry_run = dry_run;
    o.overwrite = overwrite;
    o.max_shard_bytes = static_cast<uint64_t>(max_shard_gb * 1e9);
    o.remote_code = !no_remote_code;
    if (!base_model_id.empty() && (base_model_id.find('/') == std::string::npos || !looks_like_hub_id(base_model_id)))
      fail("--base-model-id '", base_model_id, "' is not a Hub repo id (org/name)");
    o.base_model_id = base_model_id;
    return o;
  }
};

}  // namespace moeforge::cli
