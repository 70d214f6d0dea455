// dist::World's collectives through their real c10d paths in one process (a world of one that
// joins its process groups): Gloo on host tensors here, NCCL on CUDA tensors where the build has
// it and the machine a GPU (the one-GPU device check; two ranks cannot share one GPU under NCCL).
// The multi-process equalities live in tests/parity/test_distributed_train.py.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>


#include "common/error.h"
#include "dist/world.h"
#include "model/device.h"
#include "test_util.h"

namespace moeforge::dist {
namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

WorldEnv alone() {
  WorldEnv env;
  env.join_alone = true;
  env.master_port = free_port();
  return env;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         torch::equal(a.cpu().contiguous().view(torch::kUInt8), b.cpu().contiguous().view(torch::kUInt8));
}

// Every collective on `device` tensors: a world of one sums, gathers and exchanges to the identity.
void check_collectives(World& world, torch::Device device) {
  torch::manual_seed(7);
  const auto f32 = torch::randn({3, 5}).to(device);
  const auto bf16 = torch::randn({4, 2}).to(device, torch::kBFloat16);
  {
    std::vector<torch::Tensor> ts{f32.clone(), bf16.clone()};
    world.all_reduce_sum(ts);
    EXPECT_TRUE(same_bits(ts[0], f32));
    EXPECT_TRUE(same_bits(ts[1], bf16));  // the fp32 bucket holds bf16 values exactly
    EXPECT_EQ(ts[0].device(), device);
  }
  {
    std::vector<torch::Tensor> ts{f32.clone()};
    auto pending = world.all_reduce_sum_async(ts);
    pending->wait();
    EXPECT_TRUE(same_bits(ts[0], f32));
  }
  {
    const auto ids = torch::arange(6, torch::TensorOptions().dtype(torch::kInt64).device(device));
    std::vector<torch::Tensor> ts{f32.clone(), ids.clone(), bf16.clone()};
    world.broadcast(ts, 0);
    EXPECT_TRUE(same_bits(ts[0], f32));
    EXPECT_TRUE(same_bits(ts[1], ids));
    EXPECT_TRUE(same_bits(ts[2], bf16));
  }
  {
    std::vector<torch::Tensor> ts{f32.clone()};
    world.reduce_sum(ts, 0);
    EXPECT_TRUE(same_bits(ts[0], f32));
  }
  {
    const auto gathered = world.all_gather(bf16);
    EXPECT_EQ(gathered.device(), device);
    EXPECT_TRUE(same_bits(gathered, bf16.unsqueeze(0)));
  }
  {
    const auto rows = torch::randn({5, 3, 2}).to(device, torch::kBFloat16);
    const auto out = world.all_to_all(rows, {5}, {5});
    EXPECT_EQ(out.device(), device);
    EXPECT_TRUE(same_bits(out, rows));
    const auto none = world.all_to_all(rows.slice(0, 0, 0), {0}, {0});  // a rank may send nothing
    EXPECT_EQ(none.sizes(), (std::vector<int64_t>{0, 3, 2}));
  }
  {  // a list mixing the device and the host (the step statistics) goes through Gloo
    std::vector<torch::Tensor> ts{f32.clone(), torch::full({2}, 3.5, torch::kFloat64)};
    world.all_reduce_sum(ts);
    EXPECT_TRUE(same_bits(ts[0], f32));
    EXPECT_EQ(ts[1][1].item<double>(), 3.5);
  }
  EXPECT_EQ(world.all_gather_text("rank zero"), std::vector<std::string>{"rank zero"});
  world.barrier();
}

TEST(WorldCollectives, GlooWorldOfOneRunsEveryCollectiveOnHostTensors) {
  if (!distributed_supported()) GTEST_SKIP() << "built without c10d Gloo";
  World world(alone());
  EXPECT_EQ(world.device_backend(), "gloo");
  EXPECT_EQ(world.use_device(torch::kCPU), "gloo");  // host tensors stay on Gloo
  check_collectives(world, torch::kCPU);
}

TEST(WorldCollectives, OneProcessWithoutGroupsIsTheIdentity) {
  World world;
  EXPECT_EQ(world.device_backend(), "none");
  EXPECT_EQ(world.use_device(torch::kCPU), "none");
  check_collectives(world, torch::kCPU);
}

TEST(WorldCollectives, NcclWorldOfOneRunsEveryCollectiveOnTheGpu) {
  if (!distributed_supported() || !nccl_supported()) GTEST_SKIP() << "built without c10d NCCL";
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  World world(alone());
  const torch::Device gpu(torch::kCUDA, 0);
  ASSERT_EQ(world.use_device(gpu), "nccl");
  check_collectives(world, gpu);
  check_collectives(world, torch::kCPU);  // host tensors still go through Gloo beside NCCL
}

TEST(RankDevice, CudaMeansOneGpuPerLocalRankAndANamedGpuOnlyForALoneProcess) {
  using model::rank_device;
  EXPECT_EQ(rank_device(torch::kCPU, 1, 2), torch::Device(torch::kCPU));
  EXPECT_EQ(rank_device(torch::Device("cuda:1"), 0, 1), torch::Device("cuda:1"));  // one local process: as named
  MOEFORGE_EXPECT_ERROR(rank_device(torch::Device("cuda:1"), 0, 2, "train: --device"),
                        "train: --device cuda:1 names one GPU for 2 local processes; give cuda without an index (local rank i runs on cuda:i)");
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  MOEFORGE_EXPECT_ERROR(rank_device(torch::kCUDA, static_cast<int>(gpus), static_cast<int>(gpus) + 2),
                        "--device cuda: local rank " + std::to_string(gpus) + " of " + std::to_string(gpus + 2) + " needs CUDA device " +
                            std::to_string(gpus) + "; this machine has " + std::to_string(gpus) + " (one GPU per rank)");
  if (gpus >= 2) EXPECT_EQ(rank_device(torch::kCUDA, 1, 2), torch::Device("cuda:1"));
}

}  // namespace
}  // namespace moeforge::dist
