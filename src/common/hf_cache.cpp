// The local Hugging Face cache (see hf_cache.h).
#include "common/hf_cache.h"

#include <cstdlib>
#include <fstream>
#include <vector>

namespace moeforge {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

fs::path hub_dir() {
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HF_HOME"); !v.empty()) return fs::path(v) / "hub";
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) return fs::path(v) / "huggingface" / "hub";
  return fs::path(env("HOME")) / ".cache" / "huggingface" / "hub";
}

bool id_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; }

// "org/name@rev" -> ("org/name", "rev").
std::pair<std::string, std::string> split_revision(const std::string& text) {
  const size_t at = text.find('@');
  if (at == std::string::npos) return {text, ""};
  return {text.substr(0, at), text.substr(at + 1)};
}

std::string folder_of(const std::string& id, HubKind kind) {
  std::string folder = (kind == HubKind::Model ? "models--" : "datasets--") + id;
  for (size_t p = folder.find('/'); p != std::string::npos; p = folder.find('/', p + 2)) folder.replace(p, 1, "--");
  return folder;
}

std::string read_first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

}  // namespace

bool looks_like_hub_id(const std::string& text) {
  const auto [id, rev] = split_revision(text);
  if (id.empty() || id.front() == '.' || id.front() == '-' || id.find("..") != std::string::npos) return false;
  size_t slashes = 0;
  for (char c : id) {
    if (c == '/') ++slashes;
    else if (!id_char(c)) return false;
  }
  if (slashes > 1 || id.back() == '/' || id.front() == '/') return false;
  for (char c : rev)
    if (!id_char(c) && c != '/') return false;
  return true;
}

std::optional<fs::path> find_in_hub_cache(const std::string& text, HubKind kind) {
  if (!looks_like_hub_id(text)) return std::nullopt;
  const auto [id, rev] = split_revision(text);
  const fs::path repo = hub_dir() / folder_of(id, kind);
  std::error_code ec;
  if (!fs::is_directory(repo / "snapshots", ec)) return std::nullopt;
  const std::string want = rev.empty() ? "main" : rev;
  if (fs::is_regular_file(repo / "refs" / want, ec)) {
    const fs::path snapshot = repo / "snapshots" / read_first_line(repo / "refs" / want);
    if (fs::is_directory(snapshot, ec)) return snapshot;
  }
  if (fs::is_directory(repo / "snapshots" / want, ec)) return repo / "snapshots" / want;  // a commit hash
  if (rev.empty()) {  // no refs/main: the only snapshot, if there is exactly one
    std::vector<fs::path> all;
    for (const auto& e : fs::directory_iterator(repo / "snapshots", ec))
      if (e.is_directory()) all.push_back(e.path());
    if (all.size() == 1) return all[0];
  }
  return std::nullopt;
}

std::string resolve_hub_reference(const std::string& text, HubKind kind) {
  std::error_code ec;
  if (text.empty() || fs::exists(text, ec)) return text;
  if (auto found = find_in_hub_cache(text, kind)) return found->string();
  return text;
}

std::string hub_cache_hint(const std::string& text, HubKind kind) {
  if (!looks_like_hub_id(text) || text.find('/') == std::string::npos) return "";
  const std::string id = split_revision(text).first;
  return std::string(" (nor a ") + (kind == HubKind::Model ? "model" : "data set") + " '" + text +
         "' in the Hugging Face cache " + hub_dir().string() + "; moeforge does not download: `hf download " + id +
         (kind == HubKind::Dataset ? " --repo-type dataset" : "") + "` first)";
}

std::string hub_id_of(const fs::path& path) {
  const fs::path p = fs::absolute(path).lexically_normal();
  std::vector<std::string> parts;
  for (const auto& part : p) parts.push_back(part.string());
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i + 1] != "snapshots") continue;
    std::string folder = parts[i];
    for (const char* prefix : {"models--", "datasets--"}) {
      if (folder.rfind(prefix, 0) != 0) continue;
      std::string id = folder.substr(std::string(prefix).size());
      for (size_t q = id.find("--"); q != std::string::npos; q = id.find("--", q + 1)) id.replace(q, 2, "/");
      return id;
    }
  }
  return "";
}

}  // namespace moeforge
