// The sorted-dispatch expert function against a dense masked reference: outputs and every gradient,
// for each activation, with and without biases, with experts that receive no tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "arch/mxfp4.h"
#include "model/moe_experts.h"
#include "model/mxfp4_experts.h"
#include "model/router.h"

namespace moeforge::model {
namespace {

struct Case {
  Activation kind;
  bool biases;
};

StackedExperts random_experts(int64_t E, int64_t H, int64_t F, bool gated, bool biases, torch::Dtype dtype) {
  auto options = torch::TensorOptions().dtype(dtype);
  StackedExperts w;
  w.w_in = (torch::randn({E, gated ? 2 * F : F, H}, options) * 0.5).requires_grad_();
  w.w_out = (torch::randn({E, H, F}, options) * 0.5).requires_grad_();
  if (biases) {
    w.b_in = (torch::randn({E, gated ? 2 * F : F}, options) * 0.5).requires_grad_();
    w.b_out = (torch::randn({E, H}, options) * 0.5).requires_grad_();
  }
  return w;
}

class ExpertsMatchReference : public ::testing::TestWithParam<Case> {};

TEST_P(ExpertsMatchReference, ForwardAndAllGradients) {
  torch::manual_seed(7);
  const auto [kind, biases] = GetParam();
  ActivationOptions activation{kind, 7.0, 1.702};
  const int64_t T = 37, H = 12, F = 10, E = 6, K = 2;
  StackedExperts w = random_experts(E, H, F, activation.gated(), biases, torch::kFloat64);
  // GPT-OSS clamp limit must bite: scale inputs so some pre-activations exceed +-limit
  auto x = (torch::randn({T, H}, torch::kFloat64) * (kind == Activation::GptOssClampedGlu ? 4.0 : 1.0)).requires_grad_();
  auto logits = torch::randn({T, E}, torch::kFloat64);
  logits.index_put_({torch::indexing::Slice(), 5}, -100.0);  // expert 5 gets no tokens
  auto ids = std::get<1>(logits.topk(K, -1));
  auto weights = torch::rand({T, K}, torch::kFloat64).requires_grad_();
  auto upstream = torch::randn({T, H}, torch::kFloat64);

  auto out = run_experts(x, ids, weights, w, activation);
  auto ref = run_experts_dense_reference(x, ids, weights, w, activation);
  ASSERT_TRUE(torch::allclose(out, ref, 1e-10, 1e-10)) << (out - ref).abs().max();

  std::vector<torch::Tensor> inputs = {x, weights, w.w_in, w.w_out};
  if (biases) {
    inputs.push_back(w.b_in);
    inputs.push_back(w.b_out);
  }
  auto grads = torch::autograd::grad({out}, inputs, {upstream});
  auto ref_grads = torch::autograd::grad({ref}, inputs, {upstream});
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_TRUE(torch::allclose(grads[i], ref_grads[i], 1e-9, 1e-9))
        << "input " << i << " max diff " << (grads[i] - ref_grads[i]).abs().max();
  // the unused expert's weights get exactly zero gradient
  EXPECT_EQ(grads[2][5].abs().sum().item<double>(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Activations, ExpertsMatchReference,
                         ::testing::Values(Case{Activation::SiluGlu, false}, Case{Activation::SiluGlu, true},
                                           Case{Activation::GptOssClampedGlu, true},
                                           Case{Activation::GeluNew, true}));

TEST(ExpertsFunction, Float32MatchesReference) {
  torch::manual_seed(3);
  ActivationOptions activation{Activation::SiluGlu};
  StackedExperts w = random_experts(8, 32, 24, true, false, torch::kFloat32);
  auto x = torch::randn({64, 32});
  auto ids = std::get<1>(torch::randn({64, 8}).topk(2, -1));
  auto weights = torch::rand({64, 2});
  auto out = run_experts(x, ids, weights, w, activation);
  auto ref = run_experts_dense_reference(x, ids, weights, w, activation);
  EXPECT_TRUE(torch::allclose(out, ref, 1e-4, 1e-5));
}

// With two threads and at least two experts per thread the experts run concurrently, one thread
// each (moe_experts.cpp run_concurrently); with one thread they run in order, each GEMM on it.
// Both must give the same output and gradients, in fp32 and bf16, and a forward without autograd
// (which keeps no pre-activations) the same output as one with.
TEST(ExpertsFunction, ConcurrentExpertsMatchOneThread) {
  const int threads_before = torch::get_num_threads();
  for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::manual_seed(21);
    ActivationOptions activation{Activation::GptOssClampedGlu, 7.0, 1.702};
    const int64_t T = 96, H = 32, F = 16, E = 16, K = 4;
    StackedExperts w = random_experts(E, H, F, true, true, dtype);
    auto x = (torch::randn({T, H}) * 2.0).to(dtype).requires_grad_();
    auto routing = route(torch::randn({T, E}), {RouterKind::TopKThenSoftmax, K, true});
    auto weights = routing.weights.detach().requires_grad_();
    auto upstream = torch::randn({T, H}).to(dtype);
    std::vector<torch::Tensor> inputs = {x, weights, w.w_in, w.b_in, w.w_out, w.b_out};
    auto run = [&](int threads) {
      torch::set_num_threads(threads);
      auto out = run_experts(x, routing.expert_ids, weights, w, activation);
      auto grads = torch::autograd::grad({out}, inputs, {upstream});
      torch::NoGradGuard no_grad;
      auto inference = run_experts(x, routing.expert_ids, weights, w, activation);
      EXPECT_TRUE(torch::equal(inference, out)) << "a forward without autograd differs";
      grads.insert(grads.begin(), out);
      return grads;
    };
    auto one = run(1), two = run(2);
    const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    for (size_t i = 0; i < one.size(); ++i)
      EXPECT_TRUE(torch::allclose(one[i].to(torch::kFloat32), two[i].to(torch::kFloat32), tolerance, tolerance))
          << "tensor " << i << " (0 = output) max diff " << (one[i] - two[i]).abs().max().item<double>();
  }
  torch::set_num_threads(threads_before);
}

// The grouped-GEMM path (CUDA's default) against the per-expert loop (CPU's default), forced on CPU:
// output and every gradient, for each activation, biases, an expert without tokens, fp32 and bf16.
struct GemmCase {
  Activation kind;
  bool biases;
  torch::Dtype dtype;
};
class GroupedMatchesLoop : public ::testing::TestWithParam<GemmCase> {
 protected:
  void TearDown() override { set_expert_gemm(ExpertGemm::Auto); }
};

TEST_P(GroupedMatchesLoop, ForwardAndAllGradients) {
  if (!grouped_gemm_available()) GTEST_SKIP() << "this libtorch has no at::_grouped_mm";
  torch::manual_seed(11);
  const auto [kind, biases, dtype] = GetParam();
  ActivationOptions activation{kind, 7.0, 1.702};
  const int64_t T = 45, H = 32, F = 24, E = 6, K = 2;  // rows of 16-byte multiples, as grouped GEMM needs
  StackedExperts w = random_experts(E, H, F, activation.gated(), biases, dtype);
  auto x = (torch::randn({T, H}, dtype) * (kind == Activation::GptOssClampedGlu ? 4.0 : 1.0)).requires_grad_();
  auto logits = torch::randn({T, E});
  logits.index_put_({torch::indexing::Slice(), 2}, -100.0);  // expert 2 gets no tokens
  auto ids = std::get<1>(logits.topk(K, -1));
  auto weights = torch::rand({T, K}).requires_grad_();
  auto upstream = torch::randn({T, H}, dtype);
  std::vector<torch::Tensor> inputs = {x, weights, w.w_in, w.w_out};
  if (biases) {
    inputs.push_back(w.b_in);
    inputs.push_back(w.b_out);
  }
  auto run = [&](ExpertGemm gemm) {
    set_expert_gemm(gemm);
    auto out = run_experts(x, ids, weights, w, activation);
    auto grads = torch::autograd::grad({out}, inputs, {upstream});
    grads.insert(grads.begin(), out);
    return grads;
  };
  auto loop = run(ExpertGemm::Loop);
  auto grouped = run(ExpertGemm::Grouped);
  const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
  for (size_t i = 0; i < loop.size(); ++i) {
    auto a = loop[i].to(torch::kFloat32), b = grouped[i].to(torch::kFloat32);
    const double scale = std::max(1.0, a.abs().max().item<double>());
    EXPECT_LE((a - b).abs().max().item<double>(), tol * scale) << (i == 0 ? "output" : "gradient of input " + std::to_string(i - 1));
  }
  EXPECT_EQ(grouped[3][2].abs().sum().item<double>(), 0.0);  // w_in of the expert without tokens
}

INSTANTIATE_TEST_SUITE_P(Activations, GroupedMatchesLoop,
                         ::testing::Values(GemmCase{Activation::SiluGlu, false, torch::kFloat32},
                                           GemmCase{Activation::GptOssClampedGlu, true, torch::kFloat32},
                                           GemmCase{Activation::GeluNew, true, torch::kFloat32},
                                           GemmCase{Activation::SiluGlu, false, torch::kBFloat16}));

TEST(ExpertsFunction, GroupedFallsBackToTheLoopForUnalignedShapes) {
  // H = 12 fp32 rows are 48 bytes but F = 10 gives 40: the grouped GEMM cannot run, the loop does.
  torch::manual_seed(5);
  set_expert_gemm(ExpertGemm::Grouped);
  ActivationOptions activation{Activation::SiluGlu};
  StackedExperts w = random_experts(4, 12, 10, true, false, torch::kFloat32);
  auto x = torch::randn({9, 12});
  auto ids = std::get<1>(torch::randn({9, 4}).topk(2, -1));
  auto weights = torch::rand({9, 2});
  auto out = run_experts(x, ids, weights, w, activation);
  set_expert_gemm(ExpertGemm::Auto);
  EXPECT_TRUE(torch::allclose(out, run_experts_dense_reference(x, ids, weights, w, activation), 1e-4, 1e-5));
}

TEST(Router, SoftmaxThenTopKRenormalises) {
  auto logits = torch::tensor({{1.0f, 2.0f, 3.0f, 0.0f}});
  auto r = route(logits, {RouterKind::SoftmaxThenTopK, 2, true});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 2);
  EXPECT_EQ(r.expert_ids[0][1].item<int64_t>(), 1);
  EXPECT_NEAR(r.weights[0][0].item<float>(), std::exp(3.0) / (std::exp(3.0) + std::exp(2.0)), 1e-6);
  auto raw = route(logits, {RouterKind::SoftmaxThenTopK, 2, false});
  double z = std::exp(0.0) + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(raw.weights[0][1].item<float>(), std::exp(2.0) / z, 1e-6);
}

TEST(Router, SelectionBiasPicksButNeverWeights) {
  auto logits = torch::tensor({{1.0f, 2.0f, 3.0f, 0.0f}});
  auto bias = torch::tensor({0.0f, 0.0f, 0.0f, 12.0f});  // force-route toward expert 3
  auto r = route(logits, {RouterKind::SoftmaxThenTopK, 2, false}, bias);
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 3);
  double z = std::exp(0.0) + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 1.0 / z, 1e-6);  // weight from unbiased probs
}

TEST(Router, TopKThenSoftmaxAsGptOss) {
  auto logits = torch::tensor({{0.5f, -1.0f, 2.0f, 1.5f}});
  auto r = route(logits, {RouterKind::TopKThenSoftmax, 2, true});
  EXPECT_EQ(r.expert_ids[0][0].item<int64_t>(), 2);
  EXPECT_EQ(r.expert_ids[0][1].item<int64_t>(), 3);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 1.0 / (1.0 + std::exp(-0.5)), 1e-6);
}

TEST(Router, SigmoidWithGroupLimit) {
  // 4 experts in 2 groups; group 0 = {0,1}, group 1 = {2,3}. Keep 1 group, pick 2 experts.
  auto logits = torch::tensor({{3.0f, -3.0f, 1.0f, 1.0f}});
  RouterOptions options{RouterKind::Sigmoid, 2, true, 2.5, 2, 1};
  auto r = route(logits, options);
  auto ids = r.expert_ids[0];
  // group 1 (sum 2*sigmoid(1)=1.46) beats group 0 (sigmoid(3)+sigmoid(-3)=1.0)
  EXPECT_TRUE((ids[0].item<int64_t>() == 2 && ids[1].item<int64_t>() == 3) ||
              (ids[0].item<int64_t>() == 3 && ids[1].item<int64_t>() == 2));
  EXPECT_NEAR(r.weights.sum().item<float>(), 2.5, 1e-5);
}

TEST(Router, GradientReachesLogits) {
  auto logits = torch::randn({5, 4}).requires_grad_();
  auto r = route(logits, {RouterKind::SoftmaxThenTopK, 2, true});
  r.weights.sum().backward();  // renormalised weights sum to 1 per token: zero gradient
  EXPECT_LT(logits.grad().abs().max().item<float>(), 1e-6);
  auto logits2 = torch::randn({5, 4}).requires_grad_();
  route(logits2, {RouterKind::SoftmaxThenTopK, 2, false}).weights.pow(2).sum().backward();
  EXPECT_GT(logits2.grad().abs().max().item<float>(), 1e-4);
}

// Packed MXFP4 experts (decoded one expert at a time) compute what the same experts loaded
// dequantised compute: outputs, the input and combine-weight gradients and the bias gradients,
// bitwise in fp32 and bf16; no weight gradient exists for them.
// Random experts quantised to MXFP4 in GPT-OSS's file layout, and the dense stacks the loader
// decodes from the same blocks (gate rows first).
struct PackedCase {
  PackedExperts packed;
  torch::Tensor w_in, w_out;  // [E, 2F, H], [E, H, F] float32
};

PackedCase packed_case(int64_t E, int64_t H, int64_t F) {
  // GPT-OSS's file layout: gate_up rows interleaved (gate f at 2f, up f at 2f + 1), blocks along H.
  auto gate_up = torch::randn({E, 2 * F, H}) * 0.3, down = torch::randn({E, H, F}) * 0.3;
  auto quantize = [](const torch::Tensor& w) {  // [E, rows, cols] -> blocks [E, rows, cols/32, 16], scales
    const int64_t E_ = w.size(0), rows = w.size(1), cols = w.size(2);
    auto blocks = torch::empty({E_, rows, cols / 32, 16}, torch::kUInt8), scales = torch::empty({E_, rows, cols / 32}, torch::kUInt8);
    auto c = w.contiguous();
    mxfp4_quantize_rows(c.data_ptr<float>(), E_ * rows, cols, blocks.data_ptr<uint8_t>(), scales.data_ptr<uint8_t>());
    return std::make_pair(blocks, scales);
  };
  auto [in_blocks, in_scales] = quantize(gate_up);
  auto [out_blocks, out_scales] = quantize(down);
  auto decoded_rows = [](const torch::Tensor& b, const torch::Tensor& s) {
    const int64_t E_ = b.size(0), rows = b.size(1), groups = b.size(2);
    auto out = torch::empty({E_, rows, groups * 32});
    auto bc = b.contiguous(), sc = s.contiguous();
    mxfp4_dequantize_rows(bc.data_ptr<uint8_t>(), sc.data_ptr<uint8_t>(), E_ * rows, groups, out.data_ptr<float>());
    return out;
  };
  auto w_in_file = decoded_rows(in_blocks, in_scales);  // [E, 2F, H] interleaved
  auto w_in = torch::cat({w_in_file.index({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 2)}),
                          w_in_file.index({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None, 2)})}, 1);
  return {PackedExperts{in_blocks, in_scales, out_blocks, out_scales}, w_in, decoded_rows(out_blocks, out_scales)};
}

TEST(PackedMxfp4Experts, MatchDequantisedStacks) {
  torch::manual_seed(11);
  const int64_t T = 29, H = 64, F = 32, E = 5, K = 2;
  const PackedCase c = packed_case(E, H, F);
  for (int64_t e = 0; e < E; ++e) {
    EXPECT_TRUE(torch::equal(decode_packed_in(c.packed, e, torch::kFloat32), c.w_in[e])) << "expert " << e;
    EXPECT_TRUE(torch::equal(decode_packed_out(c.packed, e, torch::kFloat32), c.w_out[e])) << "expert " << e;
  }
  ActivationOptions activation{Activation::GptOssClampedGlu, 7.0, 1.702};
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto b_in = (torch::randn({E, 2 * F}) * 0.1).to(dtype), b_out = (torch::randn({E, H}) * 0.1).to(dtype);
    StackedExperts dense{c.w_in.to(dtype), b_in.clone().requires_grad_(), c.w_out.to(dtype), b_out.clone().requires_grad_()};
    StackedExperts packed_stack;
    packed_stack.packed = c.packed;
    packed_stack.b_in = b_in.clone().requires_grad_();
    packed_stack.b_out = b_out.clone().requires_grad_();
    auto x = (torch::randn({T, H}) * 2.0).to(dtype);
    auto logits = torch::randn({T, E});
    logits.index_put_({torch::indexing::Slice(), 4}, -100.0);  // expert 4 gets no tokens
    auto routing = route(logits, {RouterKind::TopKThenSoftmax, K, true});
    auto run = [&](StackedExperts& w) {
      auto xi = x.clone().requires_grad_();
      auto weights = routing.weights.clone().requires_grad_();
      auto out = run_experts(xi, routing.expert_ids, weights, w, activation);
      (out.to(torch::kFloat32) * torch::linspace(-1, 1, H)).sum().backward();
      return std::vector<torch::Tensor>{out, xi.grad(), weights.grad(), w.b_in.grad(), w.b_out.grad()};
    };
    auto want = run(dense), got = run(packed_stack);
    const char* names[] = {"output", "input grad", "combine-weight grad", "b_in grad", "b_out grad"};
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_TRUE(torch::equal(want[i], got[i])) << names[i] << " (" << c10::toString(dtype) << "): max diff "
                                                  << (want[i].to(torch::kFloat64) - got[i].to(torch::kFloat64)).abs().max().item<double>();
  }
}

// A packed stack with some experts unpacked (what training them needs): the same outputs and
// gradients as the dense stack, the unpacked experts' weight gradients those rows of the dense ones.
TEST(PackedMxfp4Experts, UnpackedExpertsTrainInsideAPackedStack) {
  torch::manual_seed(12);
  const int64_t T = 41, H = 64, F = 32, E = 6, K = 2;
  const PackedCase c = packed_case(E, H, F);
  const std::vector<int64_t> trained = {1, 4};
  ActivationOptions activation{Activation::GptOssClampedGlu, 7.0, 1.702};
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    StackedExperts dense{c.w_in.to(dtype).clone().requires_grad_(), {}, c.w_out.to(dtype).clone().requires_grad_(), {}};
    StackedExperts hybrid;
    hybrid.packed = c.packed;
    unpack_experts(hybrid, {4}, dtype);
    unpack_experts(hybrid, {1, 4}, dtype);  // a second call adds to the first, keeping ascending order
    ASSERT_EQ(hybrid.unpacked, trained);
    EXPECT_EQ(hybrid.row_of(4), 1);
    EXPECT_EQ(hybrid.row_of(2), -1);
    hybrid.w_in.requires_grad_();
    hybrid.w_out.requires_grad_();
    auto x = (torch::randn({T, H}) * 2.0).to(dtype);
    auto routing = route(torch::randn({T, E}), {RouterKind::TopKThenSoftmax, K, true});
    auto run = [&](StackedExperts& w) {
      auto xi = x.clone().requires_grad_();
      auto weights = routing.weights.clone().requires_grad_();
      auto out = run_experts(xi, routing.expert_ids, weights, w, activation);
      (out.to(torch::kFloat32) * torch::linspace(-1, 1, H)).sum().backward();
      return std::vector<torch::Tensor>{out, xi.grad(), weights.grad(), w.w_in.grad(), w.w_out.grad()};
    };
    auto want = run(dense), got = run(hybrid);
    auto rows = torch::tensor(trained);
    want[3] = want[3].index_select(0, rows);
    want[4] = want[4].index_select(0, rows);
    const char* names[] = {"output", "input grad", "combine-weight grad", "w_in grad", "w_out grad"};
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_TRUE(torch::equal(want[i], got[i])) << names[i] << " (" << c10::toString(dtype) << "): max diff "
                                                  << (want[i].to(torch::kFloat64) - got[i].to(torch::kFloat64)).abs().max().item<double>();
  }
}

TEST(PackedMxfp4Experts, OverflowingScalesAreNotFinite) {
  auto blocks = torch::full({2, 1, 16}, 0x77, torch::kUInt8);  // codes 7 = 6.0
  auto scales = torch::tensor({{252}, {253}}, torch::kUInt8);
  EXPECT_TRUE(mxfp4_all_finite(blocks.narrow(0, 0, 1), scales.narrow(0, 0, 1)));   // 6 * 2^125
  EXPECT_FALSE(mxfp4_all_finite(blocks, scales));                                   // 6 * 2^126 overflows
  auto small = torch::full({1, 1, 16}, 0x11, torch::kUInt8);                         // codes 1 = 0.5
  EXPECT_TRUE(mxfp4_all_finite(small, torch::tensor({{254}}, torch::kUInt8)));      // 0.5 * 2^127 is finite
}

}  // namespace
}  // namespace moeforge::model
