// Local worker launch for --nproc: fork + exec of /proc/self/exe, one TCPStore served here.
#include "dist/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/error.h"
#include "common/strings.h"
#include "common/system_memory.h"

namespace moeforge::dist {

namespace {

// argv with "--nproc N" / "--nproc=N" removed.
std::vector<std::string> without_flag(const std::vector<std::string>& argv, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == flag) {
      ++i;  // and its value
      continue;
    }
    if (argv[i].rfind(flag + "=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int launch_local_workers(int nproc, const std::vector<std::string>& args) {
  // Each worker is a whole process: refuse a count this machine cannot hold before starting any.
  const uint64_t available = available_memory_bytes(), needed = static_cast<uint64_t>(nproc) * kProcessRuntimeBytes;
  if (available > 0 && needed > available)
    fail("--nproc ", nproc, ": each worker is a whole moeforge process (about ", format_gb(kProcessRuntimeBytes),
         " before any model), ", format_gb(needed), " for ", nproc, ", but this machine has ", format_gb(available), " available");
  // The agent's store, as torchrun's: port 0 picks a free port, no race with other runs.
  c10d::TCPStoreOptions so;
  so.port = 0;
  so.isServer = true;
  so.waitWorkers = false;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  const std::string port = std::to_string(store->getPort());
  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = fork();
    if (pid < 0) fail("--nproc: cannot start worker ", r, ": fork failed");
    if (pid == 0) {
      const std::pair<const char*, std::string> vars[] = {
          {"RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(nproc)}, {"LOCAL_RANK", std::to_string(r)},
          {"LOCAL_WORLD_SIZE", std::to_string(nproc)}, {"GROUP_RANK", "0"}, {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", port}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "0"}};
      for (const auto& [name, value] : vars) setenv(name, value.c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    pids[r] = pid;
  }
  int failed_rank = -1, failed_status = 0, running = nproc;
  auto stop_others = [&] {
    for (pid_t pid : pids)
      if (pid > 0) kill(pid, SIGTERM);
    // Bounded: a worker that ignores SIGTERM for 10 s is killed.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (running > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        for (auto& p : pids)
          if (p == pid) p = -1, --running;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    for (pid_t pid : pids)
      if (pid > 0) kill(pid, SIGKILL), waitpid(pid, nullptr, 0);
    running = 0;
  };
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) break;
    int rank = -1;
    for (int r = 0; r < nproc; ++r)
      if (pids[r] == pid) rank = r, pids[r] = -1;
    if (rank < 0) continue;
    --running;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    failed_rank = rank, failed_status = status;
    stop_others();
  }
  if (failed_rank < 0) return 0;
  std::cerr << "moeforge: error: --nproc " << nproc << ": rank " << failed_rank << " " << describe(failed_status)
            << "; the other ranks were stopped\n";
  return 1;
}

}  // namespace

std::optional<int> launch_workers_if_asked(int64_t nproc, const WorldEnv& env, const std::vector<std::string>& argv,
                                           const std::string& command) {
  if (nproc < 0) fail(command, ": --nproc ", nproc, " must be at least 1");
  if (nproc <= 1) return std::nullopt;
  if (env.size == 1) return launch_local_workers(static_cast<int>(nproc), without_flag(argv, "--nproc"));
  if (env.size != nproc) fail(command, ": --nproc ", nproc, " inside a launched world of ", env.size, " (", env.source, "); drop --nproc");
  return std::nullopt;
}

}  // namespace moeforge::dist
