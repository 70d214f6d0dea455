// model::linear: torch's linear, with a 16-bit CPU backward that keeps the fast GEMM layout.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/linear.h"

namespace moeforge::model {
namespace {

struct LinearGrads {
  torch::Tensor out, dx, dw, db;
};

template <typename Fn>
LinearGrads run(Fn&& fn, const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0, const torch::Tensor& up) {
  auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  auto out = fn(x, w, b);
  out.backward(up);
  return {out.detach(), x.grad(), w.grad(), b.grad()};
}

TEST(ModelLinear, Bf16BackwardMatchesTorchWithinBf16) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 37, 48}), w = torch::randn({40, 48}) * 0.2, b = torch::randn({40}), up = torch::randn({2, 37, 40});
  const auto bf = torch::kBFloat16;
  auto ours = run([](auto& a, auto& c, auto& d) { return linear(a, c, d); }, x.to(bf), w.to(bf), b.to(bf), up.to(bf));
  auto theirs = run([](auto& a, auto& c, auto& d) { return torch::nn::functional::linear(a, c, d); }, x, w, b, up);  // fp32
  auto close = [](const torch::Tensor& got, const torch::Tensor& want) {
    return ((got.to(torch::kFloat32) - want).abs().max() / want.abs().max()).item<double>();
  };
  EXPECT_LT(close(ours.out, theirs.out), 2e-2);
  EXPECT_LT(close(ours.dx, theirs.dx), 2e-2);
  EXPECT_LT(close(ours.dw, theirs.dw), 2e-2);
  EXPECT_LT(close(ours.db, theirs.db), 2e-2);
  EXPECT_EQ(ours.dx.scalar_type(), bf);
  EXPECT_EQ(ours.dx.sizes(), x.sizes());
}

TEST(ModelLinear, Fp32IsTorchsLinearBitwise) {
  torch::manual_seed(4);
  auto x = torch::randn({5, 24}), w = torch::randn({16, 24}), b = torch::randn({16}), up = torch::randn({5, 16});
  auto ours = run([](auto& a, auto& c, auto& d) { return linear(a, c, d); }, x, w, b, up);
  auto theirs = run([](auto& a, auto& c, auto& d) { return torch::nn::functional::linear(a, c, d); }, x, w, b, up);
  EXPECT_TRUE(torch::equal(ours.out, theirs.out));
  EXPECT_TRUE(torch::equal(ours.dx, theirs.dx));
  EXPECT_TRUE(torch::equal(ours.dw, theirs.dw));
  EXPECT_TRUE(torch::equal(ours.db, theirs.db));
}

// A weight of more than 8M values (a large vocabulary's head) is converted for the fp32 product in
// column blocks: the result is that of the whole product, bias included, on the last partial block too.
TEST(ModelLinear, LargeBf16WeightInBlocksMatchesTheWholeProduct) {
  torch::manual_seed(5);
  const auto bf = torch::kBFloat16;
  auto x = torch::randn({40, 64}).to(bf), w = (torch::randn({150001, 64}) * 0.1).to(bf), b = torch::randn({150001}).to(bf);
  torch::NoGradGuard no_grad;
  auto want = torch::addmm(b.to(torch::kFloat32), x.to(torch::kFloat32), w.to(torch::kFloat32).t());
  auto got = linear(x, w, b);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_EQ(got.scalar_type(), bf);
  // One bf16 rounding of each value: within 2^-8 relative of the largest.
  EXPECT_LT(((got.to(torch::kFloat32) - want).abs().max() / want.abs().max()).item<double>(), 4e-3);
  auto dx_want = torch::mm(want.to(bf).to(torch::kFloat32), w.to(torch::kFloat32));  // a backward's g w
  auto dx = gemm(want.to(bf), w);
  EXPECT_LT(((dx.to(torch::kFloat32) - dx_want).abs().max() / dx_want.abs().max()).item<double>(), 4e-3);
}

TEST(ModelLinear, FastRightOperandKeepsTheValues) {
  auto b = torch::randn({32, 8}).to(torch::kBFloat16);
  auto fast = fast_right_operand(b);
  EXPECT_TRUE(torch::equal(fast, b));
  EXPECT_TRUE(fast.stride(1) == 1 || fast.stride(0) == 1);
  auto f32 = torch::randn({4, 4});
  EXPECT_EQ(fast_right_operand(f32).data_ptr(), f32.data_ptr());  // fp32: untouched
}

}  // namespace
}  // namespace moeforge::model
