// `moeforge report RUN_DIR [--out report.html]`: one self-contained HTML page of a run's training
// curves, router drift, expert usage before/after and evaluation (src/report/report.h).
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "report/report.h"

namespace moeforge::cli {
namespace {

CommandRegistrar report_command([](CLI::App& app) {
  auto options = std::make_shared<report::ReportOptions>();
  auto out = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("report", "Write a self-contained HTML report of a run directory (curves, usage, eval)");
  sub->add_option("RUN_DIR", options->run_dir, "run directory (metrics.jsonl, stats*/stats.json, eval*.json, searched 3 deep)")
      ->required();
  sub->add_option("--out", *out, "HTML file to write (default: RUN_DIR/report.html)");
  set_action(sub, [options, out] {
    options->out = out->empty() ? options->run_dir / "report.html" : std::filesystem::path(*out);
    options->generator = std::string("moeforge ") + MOEFORGE_VERSION + " report";
    const std::string written = report::write_report(*options);  // before printing: a failure prints nothing on stdout
    std::cout << "wrote " << written << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
