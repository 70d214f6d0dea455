// metrics.jsonl + TensorBoard scalars + terminal progress bar.
#include "train/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "io/atomic_file.h"

namespace moeforge::train {

namespace fs = std::filesystem;

MetricsLog::MetricsLog(const fs::path& run_dir, int64_t keep_through_step, MetricsOptions options) : options_(options) {
  const fs::path path = run_dir / "metrics.jsonl";
  if (keep_through_step >= 0 && fs::exists(path)) {  // drop records a resumed run will redo
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("step") || j["step"].get<int64_t>() <= keep_through_step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) fail("cannot open ", path.string());
  if (options_.tensorboard) tb_ = std::make_unique<TensorBoardWriter>(run_dir / "tensorboard");
  options_.progress = options_.progress && progress_enabled();  // `moeforge --no-progress`
  tty_ = options_.progress && ::isatty(2);
}

MetricsLog::~MetricsLog() { end_progress(); }

void MetricsLog::log(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!tb_) return;
  std::vector<std::pair<std::string, double>> scalars;
  for (auto it = record.begin(); it != record.end(); ++it)
    if (it.value().is_number() && it.key() != "step") scalars.emplace_back("train/" + it.key(), it.value().get<double>());
  if (record.contains("balance_per_layer"))
    for (size_t l = 0; l < record["balance_per_layer"].size(); ++l)
      scalars.emplace_back("balance/moe_layer_" + std::to_string(l), record["balance_per_layer"][l].get<double>());
  if (record.contains("router_kd_per_layer"))
    for (size_t l = 0; l < record["router_kd_per_layer"].size(); ++l)
      scalars.emplace_back("router_kd/moe_layer_" + std::to_string(l), record["router_kd_per_layer"][l].get<double>());
  const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  tb_->scalars(record.at("step").get<int64_t>(), scalars, wall);
  tb_->flush();
}

void MetricsLog::progress(const std::string& phase, int64_t done, int64_t total, double loss, double lr, double tps) {
  auto now = std::chrono::steady_clock::now();
  if (phase != phase_) {
    end_progress();
    phase_ = phase;
    phase_start_ = now;
    phase_first_ = done - 1;
    last_plain_ = -1;
  }
  const double elapsed = std::chrono::duration<double>(now - phase_start_).count();
  const int64_t here = done - phase_first_;
  const double eta = here > 0 ? elapsed / here * static_cast<double>(total - done) : 0.0;
  char eta_text[32];
  std::snprintf(eta_text, sizeof(eta_text), "%02d:%02d:%02d", static_cast<int>(eta / 3600), static_cast<int>(eta / 60) % 60,
                static_cast<int>(eta) % 60);
  char line[256];
  if (tty_) {
    const int width = 24, filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof(line), "\r[%s] %lld/%lld [%s] loss %.4f lr %.2e %.0f tok/s ETA %s ", phase.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), bar.c_str(), loss, lr, tps, eta_text);
    std::cerr << line << std::flush;
    drawn_ = true;
    return;
  }
  if (!options_.progress) return;
  const int64_t tenth = std::max<int64_t>(1, total / 10);
  if (done == total || done / tenth != last_plain_) {
    last_plain_ = done / tenth;
    std::snprintf(line, sizeof(line), "[%s] step %lld/%lld loss %.4f lr %.2e %.0f tok/s ETA %s\n", phase.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), loss, lr, tps, eta_text);
    std::cerr << line << std::flush;
  }
}

void MetricsLog::end_progress() {
  if (drawn_) std::cerr << "\n";
  drawn_ = false;
}

}  // namespace moeforge::train
