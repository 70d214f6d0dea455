// `--nproc N`: this same command as N worker processes on this machine, launched as torchrun
// launches them: the launcher serves the TCPStore on a free port and every worker gets RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// TORCHELASTIC_USE_AGENT_STORE=True. When a worker fails, the others are stopped and the failure
// is named by rank.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dist/world.h"

namespace moeforge::dist {

// A command's `--nproc N` (0 or 1: not given). In a process no launcher started, N > 1 runs `argv`
// without the flag as N workers and returns their exit code; inside a launched world N must be its
// size (else a one-line error naming `command`); nullopt: go on as this rank. When a worker fails,
// the launcher returns 1 after one line on stderr naming the first failed rank.
std::optional<int> launch_workers_if_asked(int64_t nproc, const WorldEnv& env, const std::vector<std::string>& argv,
                                           const std::string& command);

}  // namespace moeforge::dist
