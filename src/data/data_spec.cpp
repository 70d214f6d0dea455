// Data spec parsing: comma lists with optional ":weight", directories, mixture JSON files.
#include "data/data_spec.h"

#include "common/hf_cache.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge::data {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The name without its compression suffix (.gz, .zst): "code.jsonl.zst" -> "code.jsonl".
std::string strip_gz(std::string name) {
  if (ends_with(name, ".gz")) name.resize(name.size() - 3);
  else if (ends_with(name, ".zst")) name.resize(name.size() - 4);
  return name;
}

// "path:0.4" -> ("path", 0.4); "path" -> ("path", -1). A suffix that is not a number stays in the path.
std::pair<std::string, double> split_weight(const std::string& entry) {
  size_t colon = entry.rfind(':');
  if (colon == std::string::npos || colon + 1 >= entry.size()) return {entry, -1.0};
  std::string number = entry.substr(colon + 1);
  char* end = nullptr;
  errno = 0;
  double weight = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || errno != 0) return {entry, -1.0};
  if (!(weight > 0.0)) fail("--data entry '", entry, "': weight must be a positive number");
  return {entry.substr(0, colon), weight};
}

bool is_mixture_file(const fs::path& path) {
  return lower(path.extension().string()) == ".json" && fs::is_regular_file(path) && [&] {
    std::ifstream in(path);
    char c = 0;
    while (in.get(c) && std::isspace(static_cast<unsigned char>(c))) {}
    if (c != '{') return false;
    std::ostringstream text;
    text << c << in.rdbuf();
    auto j = nlohmann::json::parse(text.str(), nullptr, false);
    return !j.is_discarded() && (j.contains("sources") || std::all_of(j.begin(), j.end(), [](const auto& v) {
      return v.is_number();
    }));
  }();
}

void add_path(const fs::path& path, double weight, const std::string& domain, const std::string& entry,
              std::vector<SourceSpec>& out) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& item : fs::recursive_directory_iterator(path)) {
      SourceFormat format;
      if (item.is_regular_file() && format_for_path(item.path(), format)) files.push_back(item.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) fail("--data entry '", entry, "': directory '", path.string(), "' holds no .txt, .jsonl or .parquet files");
    for (const auto& file : files) {
      SourceSpec s;
      s.path = file;
      format_for_path(file, s.format);
      s.weight = weight;
      s.domain = domain.empty() ? default_domain_name(file) : domain;  // each file's stem
      s.entry = entry;
      out.push_back(std::move(s));
    }
    return;
  }
  if (!fs::is_regular_file(path, ec)) {
    if (!fs::exists(path, ec))
      if (auto cached = find_in_hub_cache(path.string(), HubKind::Dataset)) return add_path(*cached, weight, domain, entry, out);
    fail("--data entry '", entry, "': no such file or directory '", path.string(), "'", hub_cache_hint(path.string(), HubKind::Dataset));
  }
  SourceSpec s;
  s.path = path;
  if (!format_for_path(path, s.format))
    fail("--data entry '", entry, "': unsupported file type '", path.filename().string(),
         "' (use .txt, .jsonl, optionally .gz or .zst, .parquet, a directory, or a mixture .json)");
  s.weight = weight;
  s.domain = domain.empty() ? default_domain_name(path) : domain;
  s.entry = entry;
  out.push_back(std::move(s));
}

void add_mixture_file(const fs::path& file, std::vector<SourceSpec>& out) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, false);
  std::string label = file.string();
  if (j.is_discarded() || !j.is_object()) fail(label, ": not a JSON object");
  fs::path base = file.parent_path();
  auto resolve = [&](const std::string& p) { return fs::path(p).is_absolute() ? fs::path(p) : base / p; };
  if (j.contains("sources")) {
    if (!j["sources"].is_array()) fail(label, ": 'sources' must be a list");
    for (size_t i = 0; i < j["sources"].size(); ++i) {
      const auto& item = j["sources"][i];
      std::string where = cat(label, ": sources[", i, "]");
      if (!item.is_object() || !item.contains("path") || !item["path"].is_string())
        fail(where, ": needs a string 'path'");
      double weight = -1.0;
      if (item.contains("weight")) {
        if (!item["weight"].is_number() || !(item["weight"].get<double>() > 0)) fail(where, ": 'weight' must be a positive number");
        weight = item["weight"].get<double>();
      }
      std::string domain = item.contains("domain") && item["domain"].is_string() ? item["domain"].get<std::string>() : "";
      add_path(resolve(item["path"].get<std::string>()), weight, domain, where, out);
    }
    return;
  }
  for (const auto& [path, weight] : j.items()) {
    if (!(weight.get<double>() > 0)) fail(label, ": weight of '", path, "' must be positive");
    add_path(resolve(path), weight.get<double>(), "", cat(label, ": '", path, "'"), out);
  }
}

}  // namespace

bool format_for_path(const fs::path& path, SourceFormat& format) {
  std::string name = strip_gz(lower(path.filename().string()));
  if (ends_with(name, ".txt") || ends_with(name, ".text")) format = SourceFormat::Text;
  else if (ends_with(name, ".jsonl") || ends_with(name, ".ndjson")) format = SourceFormat::Jsonl;
  else if (ends_with(name, ".parquet")) format = SourceFormat::Parquet;  // compressed inside, by columns
  else return false;
  return true;
}

std::string default_domain_name(const fs::path& path) {
  fs::path p = path;
  if (p.filename().empty()) p = p.parent_path();  // "dir/"
  std::string name = strip_gz(p.filename().string());
  size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) name.resize(dot);
  return name.empty() ? "default" : name;
}

std::string resolve_data_spec(const fs::path& base_dir, const std::string& spec) {
  std::string out;
  for (const std::string& raw : split(spec, ',')) {
    auto absolute = [&](const std::string& p) { return fs::path(p).is_absolute() ? fs::path(p) : (base_dir / p).lexically_normal(); };
    std::error_code ec;
    std::string entry = absolute(raw).string();
    if (!fs::exists(absolute(raw), ec)) {
      auto [path, weight] = split_weight(raw);
      if (weight > 0) entry = absolute(path).string() + raw.substr(path.size());  // keep the ":weight" as written
    }
    out += (out.empty() ? "" : ",") + entry;
  }
  return out;
}

std::vector<SourceSpec> parse_data_spec(const std::string& spec) {
  if (spec.empty()) fail("--data is empty; give a file, a directory, 'a.jsonl:0.4,b.jsonl:0.6' or a mixture .json");
  std::vector<SourceSpec> out;
  for (const std::string& raw : split(spec, ',')) {
    if (raw.empty()) fail("--data '", spec, "': empty entry");
    std::error_code ec;
    // A path that exists as written wins over a ":weight" reading (paths may contain ':').
    auto [path, weight] = fs::exists(raw, ec) ? std::pair<std::string, double>{raw, -1.0} : split_weight(raw);
    if (weight < 0 && is_mixture_file(path)) add_mixture_file(path, out);
    else add_path(path, weight, "", path, out);
  }
  size_t weighted = std::count_if(out.begin(), out.end(), [](const SourceSpec& s) { return s.weight > 0; });
  if (weighted != 0 && weighted != out.size())
    fail("--data '", spec, "': give a weight to every entry of a mixture, or to none");
  // A weighted directory's files share its weight (the dataset mixes by SourceSpec::entry).
  return out;
}

}  // namespace moeforge::data
