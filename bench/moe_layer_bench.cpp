// MoE layer timing for bench/moe_layer_bench.py: router + sorted dispatch + expert GEMMs, forward
// and forward+backward, plus an fp32 GEMM of the same FLOPs as the roofline. Prints one JSON line.
//   moe_layer_bench --tokens 2048 --hidden 512 --ffn 1024 --experts 8 --topk 2 --iters 10 [--dtype bf16]
// The roofline GEMM runs in the layer's dtype (bf16 GEMMs are several times faster than fp32 on
// CPUs with AVX512-BF16 or AMX, far slower without).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "model/moe_experts.h"
#include "model/router.h"

using namespace moeforge::model;
using moeforge::Activation;

namespace {

template <typename Fn>
double seconds_per_iteration(Fn&& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {  // best of N: the machine is shared, the minimum is the signal
    auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t T = 2048, H = 512, F = 1024, E = 8, K = 2;
  int iters = 10, warmup = 2, threads = 2;
  std::string gemm = "auto", dtype_name = "fp32";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--gemm") {  // loop | grouped | auto (see ExpertGemm)
      gemm = argv[i + 1];
      continue;
    }
    if (flag == "--dtype") {  // fp32 | bf16
      dtype_name = argv[i + 1];
      continue;
    }
    int64_t value = std::stoll(argv[i + 1]);
    if (flag == "--tokens") T = value;
    else if (flag == "--hidden") H = value;
    else if (flag == "--ffn") F = value;
    else if (flag == "--experts") E = value;
    else if (flag == "--topk") K = value;
    else if (flag == "--iters") iters = static_cast<int>(value);
    else if (flag == "--warmup") warmup = static_cast<int>(value);
    else if (flag == "--threads") threads = static_cast<int>(value);
  }
  torch::set_num_threads(threads);
  if (dtype_name != "fp32" && dtype_name != "bf16") {
    std::fprintf(stderr, "--dtype %s: fp32 or bf16\n", dtype_name.c_str());
    return 2;
  }
  const auto dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const auto in_dtype = torch::TensorOptions().dtype(dtype);
  if (gemm == "grouped" && !grouped_gemm_available()) {
    std::fprintf(stderr, "this libtorch has no grouped GEMM\n");
    return 2;
  }
  set_expert_gemm(gemm == "loop" ? ExpertGemm::Loop : gemm == "grouped" ? ExpertGemm::Grouped : ExpertGemm::Auto);
  torch::manual_seed(0);
  auto x = torch::randn({T, H}, in_dtype);
  auto router = (torch::randn({E, H}, in_dtype) * 0.02).requires_grad_();
  StackedExperts experts;
  experts.w_in = (torch::randn({E, 2 * F, H}, in_dtype) * 0.02).requires_grad_();
  experts.w_out = (torch::randn({E, H, F}, in_dtype) * 0.02).requires_grad_();
  ActivationOptions activation{Activation::SiluGlu};
  RouterOptions options{RouterKind::SoftmaxThenTopK, K, true};
  auto layer = [&](const torch::Tensor& input) {
    auto logits = torch::nn::functional::linear(input, router);
    auto routing = route(logits, options);
    return run_experts(input, routing.expert_ids, routing.weights, experts, activation);
  };
  double forward = seconds_per_iteration([&] {
    torch::NoGradGuard no_grad;
    layer(x);
  }, warmup, iters);
  auto x_grad = x.clone().requires_grad_();
  auto upstream = torch::randn({T, H}, in_dtype);
  double forward_backward = seconds_per_iteration([&] {
    auto out = layer(x_grad);
    out.backward(upstream);
    x_grad.mutable_grad().reset();
    router.mutable_grad().reset();
    experts.w_in.mutable_grad().reset();
    experts.w_out.mutable_grad().reset();
  }, warmup, iters);
  // Roofline: one GEMM of the layer's dtype with the forward's expert FLOPs (6 T K H F), the faster
  // of the two weight layouts (row-major [H, 3F], and [3F, H] transposed as linear layers hold it:
  // without AVX512-BF16 a bf16 GEMM is ~10x faster in the second).
  auto a = torch::randn({T * K, H}, in_dtype), b = torch::randn({H, 3 * F}, in_dtype);
  auto b_rows = b.t().contiguous();
  double gemm_s = std::min(seconds_per_iteration([&] { torch::mm(a, b); }, warmup, iters),
                           seconds_per_iteration([&] { torch::mm(a, b_rows.t()); }, warmup, iters));
  // The fp32 rate too: where the CPU has no 16-bit matrix hardware, moeforge computes bf16 products in
  // fp32 (model/linear.h), so the fp32 GEMM is that run's limit.
  auto a32 = a.to(torch::kFloat32), b32_rows = b_rows.to(torch::kFloat32);
  double gemm_fp32_s = seconds_per_iteration([&] { torch::mm(a32, b32_rows.t()); }, warmup, iters);
  const double flops = 6.0 * T * K * H * F;
  std::printf("{\"tokens\": %ld, \"hidden\": %ld, \"ffn\": %ld, \"experts\": %ld, \"topk\": %ld, \"threads\": %d, "
              "\"forward_s\": %.6f, \"forward_backward_s\": %.6f, \"gemm_s\": %.6f, \"gemm_fp32_s\": %.6f, \"expert_flops\": %.0f, "
              "\"torch\": \"%s\", \"expert_gemm\": \"%s\", \"dtype\": \"%s\"}\n",
              T, H, F, E, K, threads, forward, forward_backward, gemm_s, gemm_fp32_s, flops, TORCH_VERSION, gemm.c_str(), dtype_name.c_str());
  return 0;
}
