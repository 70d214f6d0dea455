// `--nproc N`: this same command as N worker processes on this machine, launched as torchrun
// launches them: the launcher serves the TCPStore on a free port and every worker gets RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// TORCHELASTIC_USE_AGENT_STORE=True. When a worker fails, the others are stopped and the failure
// is named by rank.
#pragma once

#include <string>
#include <vector>

namespace moeforge::dist {

// `args` is the worker command line (argv without the --nproc flag). Returns the exit code:
// 0 when every worker succeeded, else 1 after one line on stderr naming the first failed rank.
int launch_local_workers(int nproc, const std::vector<std::string>& args);

// argv with "--nproc N" / "--nproc=N" removed.
std::vector<std::string> without_flag(const std::vector<std::string>& argv, const std::string& flag);

}  // namespace moeforge::dist
