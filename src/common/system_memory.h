// What this machine and this process hold in memory, from /proc (0 when unreadable).
#pragma once

#include <cstdint>

namespace moeforge {

// What one moeforge process holds before any model: the binary, libtorch, its thread pools and
// allocator arenas. Measured: `moeforge stats` of a tiny model peaks near 330 MB RSS on CPU; rounded up.
constexpr uint64_t kProcessRuntimeBytes = 500ull << 20;

// MemAvailable from /proc/meminfo in bytes.
uint64_t available_memory_bytes();
// Peak resident set (VmHWM) of this process in bytes.
uint64_t peak_rss_bytes();

}  // namespace moeforge
