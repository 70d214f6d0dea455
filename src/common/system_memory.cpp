#include "common/system_memory.h"

#include <fstream>
#include <string>

namespace moeforge {
namespace {

uint64_t proc_field_bytes(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::stoull(line.substr(key.size())) * 1024;  // kB
  return 0;
}

}  // namespace

uint64_t available_memory_bytes() { return proc_field_bytes("/proc/meminfo", "MemAvailable:"); }
uint64_t peak_rss_bytes() { return proc_field_bytes("/proc/self/status", "VmHWM:"); }

}  // namespace moeforge
