// Stored tensors viewed and loaded through libtorch keep their values and dtypes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "tensor/torch_bridge.h"
#include "test_util.h"

namespace moeforge {
namespace {

TEST(TorchBridge, ViewsAndLoadsStoredTensors) {
  test::TempDir dir;
  float values[6] = {1, -2, 3.5f, 4, 5, 6};
  uint16_t bf16[2] = {float_to_bf16(1.5f), float_to_bf16(-3.0f)};
  {
    CheckpointWriter writer(dir / "m", {{"f", DType::F32, {2, 3}}, {"h", DType::BF16, {2}}});
    writer.write("f", ByteView{reinterpret_cast<const uint8_t*>(values), sizeof values});
    writer.write("h", ByteView{reinterpret_cast<const uint8_t*>(bf16), sizeof bf16});
    writer.commit();
  }
  torch::Tensor f;
  {
    auto store = CheckpointStore::open(dir / "m");
    f = view_tensor(store->tensor("f"));
    torch::Tensor h = load_tensor(store->tensor("h"), torch::kFloat32);
    EXPECT_EQ(h.dtype(), torch::kFloat32);
    EXPECT_FLOAT_EQ(h[1].item<float>(), -3.0f);
  }
  // the view keeps its shard mapped after the store is gone
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_FLOAT_EQ(f[0][2].item<float>(), 3.5f);
  EXPECT_FLOAT_EQ(f.sum().item<float>(), 17.5f);
  EXPECT_EQ(from_scalar_type(torch::kBFloat16), DType::BF16);
}

}  // namespace
}  // namespace moeforge
