// Where a forward (or forward+backward) of a real model directory spends its time, by op and by
// moeforge scope (attention, moe, experts, ...), from torch's own profiler. For issue 19's "profile
// first": it prints the share of GEMM time, the headroom the rest leaves.
//   forward_profile_bench MODEL_DIR [--tokens 256] [--batch 1] [--iters 5] [--backward 1] [--dtype bf16]
//                         [--prefill 1] [--cold 1] [--top 25] [--trace trace.json] [--threads 2]
// --prefill 1 runs what `generate` runs for its prompt (KV cache, last-token logits only).
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "model/transformer.h"

using namespace moeforge::model;
namespace prof = torch::autograd::profiler;

namespace {

struct OpTotals {
  double self_us = 0, total_us = 0;
  int64_t calls = 0;
};

// Self time per op name: an event's duration minus the events nested inside it on its thread.
std::map<std::string, OpTotals> totals_of(const std::vector<prof::KinetoEvent>& events) {
  std::map<uint64_t, std::vector<const prof::KinetoEvent*>> by_thread;
  for (const auto& e : events)
    if (e.deviceType() == c10::DeviceType::CPU) by_thread[e.startThreadId()].push_back(&e);
  std::map<std::string, OpTotals> totals;
  for (auto& [thread, list] : by_thread) {
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) {
      return a->startNs() != b->startNs() ? a->startNs() < b->startNs() : a->endNs() > b->endNs();
    });
    std::vector<std::pair<const prof::KinetoEvent*, double>> stack;  // event, child time (us)
    auto close = [&] {
      auto [event, children] = stack.back();
      stack.pop_back();
      const double duration = event->durationNs() / 1e3;
      OpTotals& t = totals[event->name()];
      t.self_us += std::max(0.0, duration - children), t.total_us += duration, t.calls += 1;
      if (!stack.empty()) stack.back().second += duration;
    };
    for (const auto* e : list) {
      while (!stack.empty() && stack.back().first->endNs() <= e->startNs()) close();
      stack.push_back({e, 0.0});
    }
    while (!stack.empty()) close();
  }
  return totals;
}

bool is_gemm(const std::string& name) {
  for (const char* op : {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_grouped_mm",
                         "aten::_scaled_dot_product_flash_attention_for_cpu"})
    if (name == op) return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: forward_profile_bench MODEL_DIR [--tokens N] [--batch B] [--iters N] [--backward 1]\n");
    return 2;
  }
  std::string model_dir = argv[1], dtype_name = "fp32", trace;
  int64_t tokens = 256, batch = 1, iters = 5, top = 25, threads = 2;
  bool backward = false, prefill = false, cold = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--tokens") tokens = std::stoll(value);
    else if (flag == "--batch") batch = std::stoll(value);
    else if (flag == "--iters") iters = std::stoll(value);
    else if (flag == "--top") top = std::stoll(value);
    else if (flag == "--threads") threads = std::stoll(value);
    else if (flag == "--backward") backward = value == "1";
    else if (flag == "--prefill") prefill = value == "1";
    else if (flag == "--cold") cold = value == "1";
    else if (flag == "--dtype") dtype_name = value;
    else if (flag == "--trace") trace = value;
  }
  torch::set_num_threads(static_cast<int>(threads));
  LoadOptions load;
  load.dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  load.map_frozen = !backward;
  auto model = Transformer::load(model_dir, load);
  if (backward)  // every weight trained: the heaviest backward (full fine-tuning)
    for_each_parameter(model->weights(), [](const std::string&, torch::Tensor& t) {
      if (t.defined() && t.is_floating_point()) t.requires_grad_(true);
    });
  torch::manual_seed(0);
  const int64_t vocab = model->spec().vocab_size;
  auto ids = torch::randint(vocab, {batch, tokens}, torch::kInt64);
  auto step = [&] {
    ForwardOptions options;
    KvCache cache;
    if (prefill) options.cache = &cache, options.last_token_logits_only = true;
    if (!backward) {
      torch::NoGradGuard no_grad;
      model->forward(ids, options);
      return;
    }
    auto logits = model->forward(ids, options).logits;
    torch::nn::functional::cross_entropy(logits.view({-1, vocab}), ids.view({-1})).backward();
  };
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CPU};
  prof::prepareProfiler(config, activities);  // kineto must be set up before it starts a trace
  std::unique_ptr<prof::ProfilerResult> result;
  double profiled_s = 0;
  auto timed = [&](bool profile) {
    if (profile) prof::enableProfiler(config, activities);
    auto start = std::chrono::steady_clock::now();
    step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (profile) result = prof::disableProfiler(), profiled_s = seconds;
    return seconds;
  };
  // The first step pays first-touch of weights, allocator growth and thread-pool start; --cold 1
  // profiles it instead of a warm one.
  const double cold_s = timed(cold);
  double best = 1e30;
  for (int64_t i = 0; i < iters; ++i) best = std::min(best, timed(false));
  if (!cold) timed(true);
  if (!trace.empty()) result->save(trace);
  auto totals = totals_of(result->events());
  std::vector<std::pair<std::string, OpTotals>> ranked(totals.begin(), totals.end());
  std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.second.self_us > b.second.self_us; });
  double all_self = 0, gemm_self = 0;
  for (auto& [name, t] : ranked) {
    all_self += t.self_us;
    if (is_gemm(name)) gemm_self += t.self_us;
  }
  std::printf("%s: %ld x %ld tokens, %s, %s, %ld threads: best %.2f ms (%.0f tokens/s), first %.2f ms; profiled step %.2f ms, "
              "ops %.2f ms, GEMM share of op time %.1f%%\n",
              model_dir.c_str(), batch, tokens, dtype_name.c_str(),
              backward ? "forward+backward" : (prefill ? "prefill" : "forward"), threads, best * 1e3,
              batch * tokens / best, cold_s * 1e3, profiled_s * 1e3, all_self / 1e3, 100.0 * gemm_self / std::max(all_self, 1.0));
  std::printf("%-58s %10s %10s %8s %7s\n", "op / scope", "self ms", "total ms", "calls", "self %");
  for (int64_t i = 0; i < std::min<int64_t>(top, ranked.size()); ++i) {
    const auto& [name, t] = ranked[i];
    std::printf("%-58s %10.3f %10.3f %8ld %6.1f%%\n", name.substr(0, 58).c_str(), t.self_us / 1e3, t.total_us / 1e3,
                t.calls, 100.0 * t.self_us / std::max(all_self, 1.0));
  }
  return 0;
}
