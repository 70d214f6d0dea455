// `moeforge report`: one self-contained HTML page (inline SVG, no scripts, no external resources)
// summarising a run directory: training curves per phase, router KL/drift/balance, expert usage
// heat maps before and after, and the evaluation table. Inputs are found by run_files.h.
#pragma once

#include <filesystem>
#include <string>

namespace moeforge::report {

struct ReportOptions {
  std::filesystem::path run_dir;
  std::filesystem::path out;     // the .html file to write
  std::string generator = "moeforge";
  std::string generated_at;      // shown in the header; "" = now (UTC)
};

// Renders the page; throws Error naming the file when an input exists but is malformed.
std::string render_report(const ReportOptions& options);

// render_report, then writes options.out atomically (temporary sibling + rename). Returns a
// one-line summary of what the report contains.
std::string write_report(const ReportOptions& options);

}  // namespace moeforge::report
