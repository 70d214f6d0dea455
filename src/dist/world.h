// The processes of one distributed run, on PyTorch's own engine (c10d: TCPStore, ProcessGroupGloo
// for host tensors, ProcessGroupNCCL for CUDA tensors when built with it), never a transport of
// ours. Who we are comes from the launcher's environment, the way torchrun and SLURM give it:
//   torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; with
//             TORCHELASTIC_USE_AGENT_STORE=True the agent serves the TCPStore and every rank is a
//             client (`moeforge train --nproc N` launches its workers the same way, dist/launch.h);
//   SLURM:    SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (MASTER_ADDR/PORT, else the launch node:29500).
// c10d's headers stay in world.cpp: the rest of moeforge sees tensors and plain numbers only.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace moeforge::dist {

struct WorldEnv {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;      // the launcher serves the TCPStore (torchrun's agent, --nproc)
  std::string restart_count = "0";
  std::string source;            // "torchrun", "slurm", or "" (one process)
  bool join_alone = false;       // join process groups even as the only rank (tests: the real collective paths)
};

// Reads the launcher's variables; malformed or inconsistent ones fail with the variable named.
WorldEnv world_env_from_environment();

// Whether this build has c10d's Gloo backend (Debian's libgloo-dev headers at build time).
bool distributed_supported();
// Whether this build has c10d's NCCL backend (a CUDA libtorch, its NCCL's nccl.h at build time).
bool nccl_supported();

// A collective started by World::*_async; wait() blocks until it is done and its values are in place.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

class World {
 public:
  // One process: every collective is the identity.
  World();
  // Joins the run described by `env` (blocks until every rank has joined, or `timeout`).
  explicit World(const WorldEnv& env, std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return env_.rank; }
  int size() const { return env_.size; }
  int local_rank() const { return env_.local_rank; }
  int local_size() const { return env_.local_size; }
  bool is_main() const { return env_.rank == 0; }
  bool distributed() const { return env_.size > 1; }

  // Every rank calls this once, with the device its model runs on. When every rank's device is a
  // CUDA device and this build has NCCL, collectives whose tensors all live on it go through NCCL
  // (on the device, no host copies); all others (host tensors, mixed lists such as the step
  // statistics, the barrier) keep going through Gloo. Returns the backend device tensors now use.
  std::string use_device(const torch::Device& device);
  // "nccl" once use_device chose it, else "gloo" (or "none" in one process).
  std::string device_backend() const;

  // In place, summed over ranks (any device and float dtype; one flat bucket, one collective per call).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  // all_reduce_sum started in the background: the values land in `tensors` at wait(); until then
  // they must not change (the bucket is their copy, so reading them is fine).
  std::unique_ptr<PendingCollective> all_reduce_sum_async(std::vector<torch::Tensor> tensors);
  // Runs `work` on rank 0 first and on the other ranks once it is done (rank 0 fills a shared
  // cache or settles a directory the others then read). Returns what `work` returns.
  template <class Work>
  auto main_first(Work&& work) -> decltype(work()) {
    if (!is_main()) barrier();
    auto result = work();
    if (is_main()) barrier();
    return result;
  }
  // In place, every rank receives `root`'s values (same shapes on every rank; one bucket per dtype).
  void broadcast(std::vector<torch::Tensor>& tensors, int root);
  // Sums `tensors` over the ranks into rank `root`'s (fp32 bucket, as all_reduce_sum); the other
  // ranks' tensors are left as they were.
  void reduce_sum(std::vector<torch::Tensor>& tensors, int root);
  // Rows of `rows` (dim 0) exchanged: the first send_rows[0] go to rank 0, the next send_rows[1] to
  // rank 1, ...; returns recv_rows[r] rows from each rank r, in rank order (recv_rows[r] must equal
  // rank r's send_rows[this rank]). Any dtype, bit-exact; CPU tensors move as they are, others via the host.
  torch::Tensor all_to_all(const torch::Tensor& rows, const std::vector<int64_t>& send_rows, const std::vector<int64_t>& recv_rows);
  // Every rank's `shard` (same shape and dtype on every rank), concatenated in rank order along a
  // new leading dimension: [size, ...]. Bit-exact, any device (others via the host; ZeRO-3's frozen weights).
  torch::Tensor all_gather(const torch::Tensor& shard);
  // Every rank's `text`, in rank order (small metadata, through the rendezvous store).
  std::vector<std::string> all_gather_text(const std::string& text);
  void barrier();

 private:
  struct Impl;
  bool joined() const { return impl_ != nullptr; }
  WorldEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moeforge::dist
