// World on c10d: a TCPStore (served by rank 0, or by the launcher's agent) under a PrefixStore per
// restart, ProcessGroupGloo for the collectives, and ProcessGroupNCCL for CUDA tensors once
// use_device picked it (builds with NCCL only). Built with Gloo only when CMake found its
// headers (libgloo-dev: ProcessGroupGloo.hpp includes them; libtorch carries the implementation).
#include "dist/world.h"

#include <cstdlib>
#include <exception>
#include <map>
#include <optional>

#include "common/error.h"

#ifdef MOEFORGE_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef MOEFORGE_WITH_NCCL  // a CUDA libtorch and its NCCL's nccl.h (CMake): ProcessGroupNCCL's layout follows it
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace moeforge::dist {

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, int fallback) {
  const auto v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v->c_str(), &end, 10);
  if (end != v->c_str() + v->size() || n < 0 || n > 1 << 24) fail("environment variable ", name, "='", *v, "' is not a count or index");
  return static_cast<int>(n);
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

WorldEnv world_env_from_environment() {
  WorldEnv w;
  if (env("RANK") || env("WORLD_SIZE")) {
    if (!env("RANK") || !env("WORLD_SIZE")) fail("environment: RANK and WORLD_SIZE must be set together (as torchrun sets them)");
    w.source = "torchrun";
    w.rank = env_int("RANK", 0);
    w.size = env_int("WORLD_SIZE", 1);
    w.local_rank = env_int("LOCAL_RANK", w.rank);
    w.local_size = env_int("LOCAL_WORLD_SIZE", w.size);
    const std::string agent = env("TORCHELASTIC_USE_AGENT_STORE").value_or("");
    w.agent_store = agent == "True" || agent == "true" || agent == "1";
    w.restart_count = env("TORCHELASTIC_RESTART_COUNT").value_or("0");
    if (w.size > 1 && (!env("MASTER_ADDR") || !env("MASTER_PORT")))
      fail("environment: WORLD_SIZE=", w.size, " needs MASTER_ADDR and MASTER_PORT (the rendezvous address)");
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    w.source = "slurm";
    w.rank = env_int("SLURM_PROCID", 0);
    w.size = env_int("SLURM_NTASKS", 1);
    w.local_rank = env_int("SLURM_LOCALID", 0);
    w.local_size = env_int("SLURM_NTASKS_PER_NODE", w.size);
    if (!env("MASTER_ADDR") && env("SLURM_LAUNCH_NODE_IPADDR")) w.master_addr = *env("SLURM_LAUNCH_NODE_IPADDR");
  } else {
    return w;
  }
  if (auto addr = env("MASTER_ADDR")) w.master_addr = *addr;
  w.master_port = env_int("MASTER_PORT", 29500);
  if (w.size < 1 || w.rank >= w.size) fail("environment: rank ", w.rank, " is outside a world of ", w.size);
  if (w.local_size < 1 || w.local_rank >= w.local_size)
    fail("environment: local rank ", w.local_rank, " is outside ", w.local_size, " local processes");
  if (w.master_port < 1 || w.master_port > 65535) fail("environment: MASTER_PORT=", w.master_port, " is not a port");
  return w;
}

#ifdef MOEFORGE_WITH_GLOO

bool distributed_supported() { return true; }

#ifdef MOEFORGE_WITH_NCCL
bool nccl_supported() { return true; }
#else
bool nccl_supported() { return false; }
#endif

struct World::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  // Gloo moves host memory: every collective on CPU tensors, and on any tensors without NCCL.
  c10::intrusive_ptr<c10d::Backend> group;
  // The *_async collectives' own group: they run while the backward issues the expert exchanges on
  // `group`, and c10d pairs collectives across ranks by their order within a group.
  c10::intrusive_ptr<c10d::Backend> background;
  // NCCL, the same two groups, for tensors on `device` (set by use_device when every rank can).
  c10::intrusive_ptr<c10d::Backend> nccl, nccl_background;
  std::optional<torch::Device> device;
  std::chrono::milliseconds timeout{};
  int64_t gathers = 0;  // all_gather_text calls so far: the store keys of each call are fresh

  // NCCL when it is set up and every tensor lives on its device; else Gloo.
  bool on_device(const std::vector<torch::Tensor>& tensors) const {
    if (!nccl) return false;
    for (const auto& t : tensors)
      if (t.device() != *device) return false;
    return true;
  }
  // The group a collective on `tensors` runs in, and where its buffers live (the NCCL device, or the host for Gloo).
  struct Route {
    c10d::Backend& backend;
    torch::Device buffers;
  };
  Route route(const std::vector<torch::Tensor>& tensors, bool in_background) const {
    if (on_device(tensors)) return {in_background ? *nccl_background : *nccl, *device};
    return {in_background ? *background : *group, torch::kCPU};
  }
};

World::World() = default;

World::World(const WorldEnv& env_in, std::chrono::milliseconds timeout) : env_(env_in) {
  if (env_.size <= 1 && !env_.join_alone) return;
  impl_ = std::make_unique<Impl>();
  impl_->timeout = timeout;
  const std::string where = "rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.size);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env_.master_port);
    so.isServer = !env_.agent_store && env_.rank == 0;
    if (so.isServer) so.numWorkers = env_.size;
    so.waitWorkers = false;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env_.master_addr, so);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("moeforge/attempt_" + env_.restart_count, tcp);
  } catch (const std::exception& e) {
    fail(where, ": cannot reach the rendezvous store at ", env_.master_addr, ":", env_.master_port, " (", e.what(), ")");
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (auto interface = std::getenv("GLOO_SOCKET_IFNAME"))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (is_loopback(env_.master_addr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env_.rank, env_.size, options);
    impl_->background = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("background", impl_->store), env_.rank, env_.size, options);
  } catch (const std::exception& e) {
    fail(where, ": cannot join the process group (", e.what(), ")");
  }
}

World::~World() {
  if (!impl_) return;
  // NCCL's groups are ended explicitly (else c10d warns at exit): shut down after a normal run, aborted
  // while an error unwinds (a peer may be gone, and shutting down would wait for its work).
  const bool failing = std::uncaught_exceptions() > 0;
  for (auto* group : {&impl_->nccl_background, &impl_->nccl}) {
    if (!*group) continue;
    try {
      failing ? (*group)->abort() : (*group)->shutdown();
    } catch (const std::exception&) {
    }
  }
}

namespace {
// c10d's messages carry a C++ backtrace; its first line says what happened.
std::string first_line(const std::exception& e) {
  std::string text = e.what();
  return text.substr(0, text.find('\n'));
}
}  // namespace

std::string World::use_device(const torch::Device& device) {
  if (!joined()) return device_backend();
#ifdef MOEFORGE_WITH_NCCL
  // NCCL only if every rank can: a collective must take the same backend on every rank.
  const bool here = device.is_cuda();
  const torch::Device indexed = here && !device.has_index() ? torch::Device(torch::kCUDA, c10::cuda::current_device()) : device;
  std::vector<torch::Tensor> able{torch::full({1}, here ? 1.0 : 0.0, torch::kFloat64)};
  all_reduce_sum(able);
  if (able[0].item<double>() < env_.size) return device_backend();
  try {
    c10::cuda::set_device(indexed.index());
    auto make = [&](const std::string& prefix) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = impl_->timeout;
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>(prefix, impl_->store),
                                                        env_.rank, env_.size, options);
    };
    impl_->nccl = make("nccl");
    impl_->nccl_background = make("nccl_background");
    impl_->device = indexed;
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": cannot set up NCCL on ", indexed.str(), " (", first_line(e), ")");
  }
#else
  (void)device;
#endif
  return device_backend();
}

std::string World::device_backend() const {
  if (!joined()) return "none";
  return impl_->nccl ? "nccl" : "gloo";
}

namespace {
// tensors[members] as one flat tensor of `dtype` on `device`: one collective moves them all.
torch::Tensor flat_bucket(const std::vector<torch::Tensor>& tensors, const std::vector<size_t>& members, torch::ScalarType dtype,
                          torch::Device device) {
  std::vector<torch::Tensor> parts;
  for (size_t i : members) parts.push_back(tensors[i].detach().reshape({-1}).to(device, dtype));
  return torch::cat(parts);
}

// The bucket's values back into tensors[members], in place.
void unflatten_bucket(const torch::Tensor& bucket, std::vector<torch::Tensor>& tensors, const std::vector<size_t>& members) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (size_t i : members) {
    const int64_t n = tensors[i].numel();
    tensors[i].copy_(bucket.slice(0, at, at + n).view(tensors[i].sizes()));
    at += n;
  }
}

std::vector<size_t> every(size_t n) {
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  return all;
}

// One bucket to sum: float64 when any input is (step statistics), else fp32 (gradients of any float dtype).
torch::Tensor sum_bucket(const std::vector<torch::Tensor>& tensors, torch::Device device) {
  bool wide = false;
  for (const auto& t : tensors) wide = wide || t.scalar_type() == torch::kFloat64;
  return flat_bucket(tensors, every(tensors.size()), wide ? torch::kFloat64 : torch::kFloat32, device);
}

struct PendingSum : PendingCollective {
  c10::intrusive_ptr<c10d::Work> work;
  std::vector<at::Tensor> bucket;
  std::vector<torch::Tensor> tensors;
  int rank = 0;
  void wait() override {
    if (!work) return;
    try {
      work->wait();  // NCCL: the current stream waits for the collective's
    } catch (const std::exception& e) {
      fail("rank ", rank, ": all-reduce with the other ranks failed; another rank stopped? (", first_line(e), ")");
    }
    work.reset();
    unflatten_bucket(bucket[0], tensors, every(tensors.size()));
  }
};
}  // namespace

std::unique_ptr<PendingCollective> World::all_reduce_sum_async(std::vector<torch::Tensor> tensors) {
  auto pending = std::make_unique<PendingSum>();
  if (!joined() || tensors.empty()) return pending;
  const auto route = impl_->route(tensors, true);
  pending->bucket = {sum_bucket(tensors, route.buffers)};
  pending->rank = env_.rank;
  try {
    pending->work = route.backend.allreduce(pending->bucket);
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": all-reduce with the other ranks failed; another rank stopped? (", first_line(e), ")");
  }
  pending->tensors = std::move(tensors);
  return pending;
}

void World::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (!joined() || tensors.empty()) return;
  const auto route = impl_->route(tensors, false);
  std::vector<at::Tensor> bucket{sum_bucket(tensors, route.buffers)};
  try {
    route.backend.allreduce(bucket)->wait();
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": all-reduce with the other ranks failed; another rank stopped? (", first_line(e), ")");
  }
  unflatten_bucket(bucket[0], tensors, every(tensors.size()));
}

void World::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (!joined() || tensors.empty()) return;
  std::map<torch::ScalarType, std::vector<size_t>> by_dtype;  // one bucket per dtype keeps values bit-exact
  for (size_t i = 0; i < tensors.size(); ++i) by_dtype[tensors[i].scalar_type()].push_back(i);
  const auto route = impl_->route(tensors, false);
  for (const auto& [dtype, members] : by_dtype) {
    std::vector<at::Tensor> bucket{flat_bucket(tensors, members, dtype, route.buffers)};
    try {
      c10d::BroadcastOptions options;
      options.rootRank = root;
      route.backend.broadcast(bucket, options)->wait();
    } catch (const std::exception& e) {
      fail("rank ", env_.rank, ": broadcast from rank ", root, " failed; another rank stopped? (", first_line(e), ")");
    }
    unflatten_bucket(bucket[0], tensors, members);
  }
}

torch::Tensor World::all_gather(const torch::Tensor& shard) {
  if (!joined()) return shard.unsqueeze(0);
  const std::vector<torch::Tensor> one{shard};
  const bool on_device = impl_->on_device(one);
  if (!on_device && !shard.is_cpu()) return all_gather(shard.cpu()).to(shard.device());  // Gloo moves host memory
  auto local = shard.contiguous();
  auto out = torch::empty({static_cast<int64_t>(env_.size), local.numel()}, local.options());
  try {
    if (on_device) {  // NCCL gathers into one flat buffer
      auto flat_out = out.view({-1});
      auto flat_in = local.view({-1});
      impl_->nccl->_allgather_base(flat_out, flat_in)->wait();
    } else {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int r = 0; r < env_.size; ++r) outputs[0].push_back(out[r]);
      std::vector<at::Tensor> inputs{local.reshape({-1})};
      impl_->group->allgather(outputs, inputs)->wait();
    }
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": all-gather failed; another rank stopped? (", first_line(e), ")");
  }
  auto sizes = local.sizes().vec();
  sizes.insert(sizes.begin(), env_.size);
  return out.view(sizes);
}

void World::reduce_sum(std::vector<torch::Tensor>& tensors, int root) {
  if (!joined() || tensors.empty()) return;
  const std::vector<size_t> all = every(tensors.size());
  const auto route = impl_->route(tensors, false);
  std::vector<at::Tensor> bucket{flat_bucket(tensors, all, torch::kFloat32, route.buffers)};
  try {
    c10d::ReduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.rootRank = root;
    route.backend.reduce(bucket, options)->wait();
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": reduce to rank ", root, " failed; another rank stopped? (", first_line(e), ")");
  }
  if (env_.rank == root) unflatten_bucket(bucket[0], tensors, all);
}

torch::Tensor World::all_to_all(const torch::Tensor& rows, const std::vector<int64_t>& send_rows,
                                const std::vector<int64_t>& recv_rows) {
  if (!joined()) return rows;
  if (static_cast<int>(send_rows.size()) != env_.size || static_cast<int>(recv_rows.size()) != env_.size)
    fail("internal: all_to_all needs one row count per rank");
  int64_t received = 0;
  for (int64_t n : recv_rows) received += n;
  const auto route = impl_->route({rows}, false);
  // Rows travel as bytes: bit-exact for every dtype, and both backends exchange uint8 whatever
  // their versions support of bf16 or int16.
  int64_t row_values = 1;  // from the shape, not numel: a rank may send no rows
  for (int64_t d = 1; d < rows.dim(); ++d) row_values *= rows.size(d);
  auto input = rows.detach().to(route.buffers).contiguous().view({rows.size(0), row_values}).view(torch::kUInt8);
  auto output = torch::empty({received, input.size(1)}, input.options());
  std::vector<int64_t> out_splits = recv_rows, in_splits = send_rows;
  try {
    route.backend.alltoall_base(output, input, out_splits, in_splits)->wait();
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": all-to-all with the other ranks failed; another rank stopped? (", first_line(e), ")");
  }
  auto sizes = rows.sizes().vec();
  sizes[0] = received;
  output = output.view(rows.scalar_type()).view(sizes);
  return output.to(rows.device());
}

std::vector<std::string> World::all_gather_text(const std::string& text) {
  if (!joined()) return {text};
  const std::string prefix = "gather/" + std::to_string(impl_->gathers++) + "/";
  std::vector<std::string> out;
  try {
    impl_->store->set(prefix + std::to_string(env_.rank), std::vector<uint8_t>(text.begin(), text.end()));
    for (int r = 0; r < env_.size; ++r) {
      const auto bytes = impl_->store->get(prefix + std::to_string(r));
      out.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": exchanging metadata with the other ranks failed (", first_line(e), ")");
  }
  return out;
}

void World::barrier() {
  if (!joined()) return;
  try {
    impl_->group->barrier()->wait();
  } catch (const std::exception& e) {
    fail("rank ", env_.rank, ": barrier with the other ranks failed; another rank stopped? (", first_line(e), ")");
  }
}

#else  // no Gloo headers at build time: one process only

bool distributed_supported() { return false; }
bool nccl_supported() { return false; }

struct World::Impl {};

World::World() = default;

World::World(const WorldEnv& env_in, std::chrono::milliseconds) : env_(env_in) {
  if (env_.size > 1)
    fail("this moeforge was built without c10d's Gloo backend (install libgloo-dev and re-run cmake); it cannot join a ",
         env_.size, "-process run");
}

World::~World() = default;
std::string World::use_device(const torch::Device&) { return device_backend(); }
std::string World::device_backend() const { return "none"; }
namespace {
struct NothingPending : PendingCollective {
  void wait() override {}
};
}  // namespace
std::unique_ptr<PendingCollective> World::all_reduce_sum_async(std::vector<torch::Tensor>) { return std::make_unique<NothingPending>(); }
void World::all_reduce_sum(std::vector<torch::Tensor>&) {}
void World::broadcast(std::vector<torch::Tensor>&, int) {}
void World::reduce_sum(std::vector<torch::Tensor>&, int) {}
torch::Tensor World::all_to_all(const torch::Tensor& rows, const std::vector<int64_t>&, const std::vector<int64_t>&) { return rows; }
std::vector<std::string> World::all_gather_text(const std::string& text) { return {text}; }
torch::Tensor World::all_gather(const torch::Tensor& shard) { return shard.unsqueeze(0); }
void World::barrier() {}

#endif

}  // namespace moeforge::dist
