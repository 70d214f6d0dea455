#include "io/stale_temps.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/remove_tree.h"
#include "common/strings.h"

namespace moeforge {
namespace fs = std::filesystem;

namespace {

thread_local uint64_t g_tree_bytes = 0;  // nftw's callback is a plain function

int add_size(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F) g_tree_bytes += static_cast<uint64_t>(st->st_blocks) * 512;  // allocated, as du counts
  return 0;
}

uint64_t tree_bytes(const fs::path& path) {
  g_tree_bytes = 0;
  ::nftw(path.c_str(), add_size, 16, FTW_PHYS);
  return g_tree_bytes;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool process_alive(long pid) {
  if (pid <= 0) return true;  // not ours to judge: keep it
  if (pid == static_cast<long>(::getpid())) return true;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

// True when nobody holds the entry's lock (a directory that cannot be opened counts as held).
bool lock_free(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);  // releases the probe lock
  return free;
}

}  // namespace

bool parse_temp_name(const std::string& entry, const std::string& name, long* pid) {
  if (entry.size() < 2 || entry[0] != '.') return false;
  const size_t marker = entry.rfind(".tmp-");
  if (marker == std::string::npos || marker < 1) return false;
  if (!name.empty() && entry.compare(1, marker - 1, name) != 0) return false;
  if (!name.empty() && marker - 1 != name.size()) return false;
  std::string rest = entry.substr(marker + 5);
  const size_t dash = rest.find('-');
  const std::string pid_text = rest.substr(0, dash);
  if (!all_digits(pid_text) || pid_text.size() > 9) return false;
  if (dash != std::string::npos && !all_digits(rest.substr(dash + 1))) return false;
  *pid = std::stol(pid_text);
  return true;
}

StaleTemps remove_stale_temps(const fs::path& directory, const std::string& name) {
  StaleTemps freed;
  DIR* dir = ::opendir(directory.empty() ? "." : directory.c_str());
  if (!dir) return freed;
  std::vector<std::string> entries;
  while (const dirent* e = ::readdir(dir)) entries.emplace_back(e->d_name);
  ::closedir(dir);
  std::vector<std::string> removed;
  for (const auto& entry : entries) {
    long pid = 0;
    if (!parse_temp_name(entry, name, &pid) || process_alive(pid)) continue;
    const fs::path path = directory / entry;
    if (!lock_free(path)) continue;
    const uint64_t bytes = tree_bytes(path);
    std::string error;
    if (!remove_tree(path, &error)) {
      std::cerr << "moeforge: warning: cannot remove " << path.string() << " left by an interrupted run: " << error
                << "\n";
      continue;
    }
    ++freed.count;
    freed.bytes += bytes;
    removed.push_back(entry);
  }
  if (freed.count)
    std::cerr << "moeforge: note: removed " << freed.count << " temporary output" << (freed.count > 1 ? "s" : "")
              << " left by an interrupted run in " << (directory.empty() ? fs::path(".") : directory).string() << " ("
              << join(removed, ", ") << "), freeing " << human_bytes(freed.bytes) << "\n";
  return freed;
}

OwnedTempDir::OwnedTempDir(const fs::path& destination) {
  fs::path parent = destination.parent_path().empty() ? fs::path(".") : destination.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail(parent.string(), ": cannot create directory: ", ec.message());
  const std::string name = destination.filename().string();
  remove_stale_temps(parent, name);
  std::random_device rd;
  for (int attempt = 0; attempt < 100 && path_.empty(); ++attempt) {
    fs::path candidate = parent / cat(".", name, ".tmp-", ::getpid(), "-", rd() % 1000000);
    if (::mkdir(candidate.c_str(), 0755) == 0) {
      path_ = candidate;
    } else if (errno != EEXIST) {
      fail(candidate.string(), ": cannot create temporary directory: ", std::strerror(errno));
    }
  }
  if (path_.empty()) fail(parent.string(), ": cannot create a temporary directory");
  lock_fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd_ >= 0 && ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);  // a file system without flock: the live process id still protects it
    lock_fd_ = -1;
  }
}

OwnedTempDir::~OwnedTempDir() { release(); }

void OwnedTempDir::release() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
}

}  // namespace moeforge
