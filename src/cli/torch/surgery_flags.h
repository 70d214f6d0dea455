// Flags every surgery subcommand shares (--out, --dry-run, --overwrite, --max-shard-size,
// --no-remote-code) and the ExecuteOptions they fill.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "surgery/output_plan.h"

namespace moeforge::cli {

struct SurgeryFlags {
  std::string out;
  bool dry_run = false;
  bool overwrite = false;
  double max_shard_gb = 5.0;
  bool no_remote_code = false;
  void add_to(CLI::App* app) {
    app->add_option("--out", out, "output model directory (written to a temporary sibling, then renamed)")->required();
    app->add_flag("--dry-run", dry_run, "print the plan (tensors read, written, created, bytes) and write nothing");
    app->add_flag("--overwrite", overwrite, "replace an existing output directory");
    app->add_option("--max-shard-size", max_shard_gb, "shard size cap in GB (default 5)");
    app->add_flag("--no-remote-code", no_remote_code,
                  "write the plain family even where transformers then ignores a moeforge shared expert or selection "
                  "bias (printed); default: auto_map + modeling_moeforge.py, loaded with trust_remote_code=True");
  }
  surgery::ExecuteOptions options() const {
    surgery::ExecuteOptions o;
    o.dry_run = dry_run;
    o.overwrite = overwrite;
    o.max_shard_bytes = static_cast<uint64_t>(max_shard_gb * 1e9);
    o.remote_code = !no_remote_code;
    return o;
  }
};

}  // namespace moeforge::cli
