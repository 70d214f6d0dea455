// `moeforge info MODEL_DIR [--json] [--verify]`: family, sizes, experts, parameter counts, dtypes and
// memory; --verify also reads every tensor (checksums, NaN/Inf counts).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "arch/model_summary.h"
#include "cli/commands.h"
#include "cli/info_memory.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_verify.h"

namespace moeforge::cli {
namespace {

struct InfoOptions {
  std::string model_dir;
  bool json = false;
  bool verify = false;
};

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

std::string non_finite_text(const NonFinite& n) {
  std::vector<std::string> parts;
  if (n.nan) parts.push_back(cat(n.nan, " NaN"));
  if (n.inf) parts.push_back(cat(n.inf, " Inf"));
  return parts.empty() ? "none" : join(parts, ", ");
}

nlohmann::json digest_to_json(const CheckpointDigest& d) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const TensorDigest& t : d.per_tensor) {
    nlohmann::json entry = {{"dtype", std::string(dtype_name(t.dtype))}, {"bytes", t.bytes}, {"xxh64", hex64(t.xxh64)}};
    if (t.non_finite.nan) entry["nan"] = t.non_finite.nan;
    if (t.non_finite.inf) entry["inf"] = t.non_finite.inf;
    tensors[t.name] = std::move(entry);
  }
  return {{"tensors", d.tensors},
          {"bytes", d.bytes},
          {"seconds", d.seconds},
          {"checksum_xxh64", hex64(d.checksum)},
          {"nan", d.non_finite.nan},
          {"inf", d.non_finite.inf},
          {"non_finite_tensors", d.non_finite_tensors()},
          {"per_tensor", std::move(tensors)}};
}

std::string digest_to_table(const CheckpointDigest& d) {
  std::ostringstream out;
  auto row = [&](const std::string& key, const std::string& value) {
    out << "  " << key << std::string(key.size() < 22 ? 22 - key.size() : 1, ' ') << value << "\n";
  };
  double rate = d.seconds > 0 ? static_cast<double>(d.bytes) / d.seconds / 1e6 : 0.0;
  char speed[64];
  std::snprintf(speed, sizeof speed, "%.2f s (%.0f MB/s)", d.seconds, rate);
  row("verified", cat(d.tensors, " tensors, ", human_bytes(d.bytes), " read in ", speed));
  row("checksum (xxh64)", hex64(d.checksum));
  row("NaN / Inf", non_finite_text(d.non_finite));
  for (const TensorDigest& t : d.per_tensor)
    if (t.non_finite.nan || t.non_finite.inf) out << "    " << t.name << ": " << non_finite_text(t.non_finite) << "\n";
  return out.str();
}

nlohmann::json modes_to_json(const std::vector<ModeMemory>& modes) {
  nlohmann::json out = nlohmann::json::array();
  for (const ModeMemory& m : modes)
    out.push_back({{"mode", m.mode}, {"commands", m.commands}, {"weight_bytes", m.weights}, {"mapped_bytes", m.mapped},
                   {"host_peak_bytes", m.peak}, {"streamed_peak_bytes", m.streamed}});
  return out;
}

std::string modes_to_table(const std::vector<ModeMemory>& modes) {
  std::ostringstream out;
  out << "  memory plan on CPU (predicted host peak before activations; a run's own with --verbose, train's with --list-params):\n";
  for (const ModeMemory& m : modes) {
    out << "    " << m.mode << std::string(m.mode.size() < 20 ? 20 - m.mode.size() : 1, ' ') << "peak " << format_gb(m.peak)
        << " (weights " << format_gb(m.weights) << ", " << format_gb(m.mapped) << " of them mapped from the file); streamed "
        << format_gb(m.streamed) << "; " << m.commands << "\n";
  }
  out << "    (streamed: stats, eval and teacher-cache over --max-memory hold one layer at a time; train adds its state)\n";
  return out.str();
}

CommandRegistrar info_command([](CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  auto* sub = app.add_subcommand("info", "Describe a model directory: family, sizes, experts, parameters, memory");
  sub->add_option("MODEL_DIR", options->model_dir, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  sub->add_flag("--json", options->json, "Print JSON instead of a table");
  sub->add_flag("--verify", options->verify,
                "Read every tensor: XXH64 checksums (per tensor and overall) and NaN/Inf counts; "
                "exits 1 when a floating-point tensor holds NaN or Inf");
  set_action(sub, [options] {
    auto store = CheckpointStore::open(options->model_dir);
    ModelSummary summary = summarize_model(*store);
    std::vector<ModeMemory> modes;
    if (info_memory_provider()) modes = info_memory_provider()(*store);
    std::optional<CheckpointDigest> digest;
    if (options->verify) digest = verify_checkpoint(*store);
    if (options->json) {
      nlohmann::json out = summary_to_json(summary);
      if (!modes.empty()) out["memory"]["modes"] = modes_to_json(modes);
      if (digest) out["verify"] = digest_to_json(*digest);
      std::cout << out.dump(2) << "\n";
    } else {
      std::cout << summary_to_table(summary);
      if (!modes.empty()) std::cout << modes_to_table(modes);
      if (digest) std::cout << digest_to_table(*digest);
    }
    if (digest) {
      std::vector<std::string> bad = digest->non_finite_tensors();
      if (!bad.empty()) {
        std::cout.flush();
        fail(options->model_dir, ": ", bad.size(), bad.size() == 1 ? " tensor holds" : " tensors hold",
             " NaN/Inf values (", non_finite_text(digest->non_finite), "; first: '", bad.front(), "')");
      }
    }
    return 0;
  });
});

}  // namespace

InfoMemoryProvider& info_memory_provider() {
  static InfoMemoryProvider provider = nullptr;
  return provider;
}

}  // namespace moeforge::cli
