// Temporary outputs (".NAME.tmp-PID[-N]" beside NAME) that an interrupted run left behind. A writer
// holds an exclusive flock on its temporary directory for as long as it lives, so a later run can tell
// one whose writer is gone (killed, crashed, powered off) from one another process is still writing,
// and remove it instead of leaving gigabytes behind on every interruption.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace moeforge {

// A temporary directory created beside `destination` and locked until release() or destruction.
// It is not removed here: the caller renames it into place or removes it.
class OwnedTempDir {
 public:
  explicit OwnedTempDir(const std::filesystem::path& destination);
  ~OwnedTempDir();
  OwnedTempDir(const OwnedTempDir&) = delete;
  OwnedTempDir& operator=(const OwnedTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  void release();  // drops the lock (after the rename into place)

 private:
  std::filesystem::path path_;
  int lock_fd_ = -1;
};

struct StaleTemps {
  size_t count = 0;
  uint64_t bytes = 0;
};

// True for ".NAME.tmp-PID" and ".NAME.tmp-PID-N" (any NAME when `name` is empty); sets *pid.
bool parse_temp_name(const std::string& entry, const std::string& name, long* pid);

// Removes the temporaries of `name` (of any output when empty) in `directory` whose writer is gone:
// nobody holds their lock and the process named in them no longer exists. Prints one note with
// what it freed; what it cannot remove is left with a warning. Never throws.
StaleTemps remove_stale_temps(const std::filesystem::path& directory, const std::string& name = "");

}  // namespace moeforge
