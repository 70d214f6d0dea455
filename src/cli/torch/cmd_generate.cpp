// `moeforge generate MODEL --prompt T` and `moeforge chat MODEL` (interactive, chat template,
// streamed tokens); both accept sampling flags and --force-expert L:E for single-expert inference.
#include <torch/torch.h>

#include <chrono>

#include <iostream>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/torch/runtime_flags.h"
#include "common/error.h"
#include "model/generate.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

struct SamplingFlags {
  int64_t max_new = 64, top_k = 0;
  double temperature = 0.0, top_p = 1.0;
  uint64_t seed = 0;
  std::string force_expert, tokenizer_dir;
  bool ignore_eos = false;
  void add_to(CLI::App* sub) {
    sub->add_flag("--ignore-eos", ignore_eos, "always generate --max-new tokens (benchmarks)");
    sub->add_option("--max-new", max_new, "tokens to generate")->capture_default_str();
    sub->add_option("--temperature", temperature, "0 = greedy")->capture_default_str();
    sub->add_option("--top-k", top_k, "sample from the k most likely (0 = off)");
    sub->add_option("--top-p", top_p, "nucleus sampling threshold (1 = off)");
    sub->add_option("--seed", seed, "sampling seed")->capture_default_str();
    sub->add_option("--force-expert", force_expert, "LAYER:EXPERT[,..] route every token of a layer to one expert (*:E every MoE layer; -1 the last layer)");
    accepts_hub_id(sub->add_option("--tokenizer", tokenizer_dir, "tokenizer directory (default: the model's)"));
  }
  // Errors in the flags themselves, before the model is loaded.
  void check() const {
    if (temperature < 0) fail("--temperature must be >= 0");
    if (top_p <= 0 || top_p > 1) fail("--top-p must be in (0, 1]");
    if (max_new < 0) fail("--max-new must be >= 0");
    if (!force_expert.empty()) parse_force_expert(force_expert, nullptr);
  }
  model::SamplingOptions options(const model::Transformer& model, const tokenizer::Tokenizer& tok) const {
    check();
    model::SamplingOptions o;
    o.max_new_tokens = max_new;
    o.temperature = temperature;
    o.top_k = top_k;
    o.top_p = top_p;
    o.seed = seed;
    if (!ignore_eos) o.stop_ids = model.spec().eos_token_ids;
    if (!ignore_eos && tok.eos_id() && std::find(o.stop_ids.begin(), o.stop_ids.end(), *tok.eos_id()) == o.stop_ids.end())
      o.stop_ids.push_back(*tok.eos_id());
    if (!force_expert.empty()) o.force_expert = parse_force_expert(force_expert, &model.spec());
    return o;
  }
};

// Keeps prompt + generation inside the model's context, dropping the oldest prompt tokens.
std::vector<int64_t> fit_context(std::vector<int64_t> prompt, const model::Transformer& model, int64_t max_new) {
  const int64_t limit = model.spec().max_position_embeddings;
  if (limit > 0 && static_cast<int64_t>(prompt.size()) + max_new > limit) {
    int64_t keep = std::max<int64_t>(1, limit - max_new);
    std::cerr << "moeforge: warning: prompt of " << prompt.size() << " tokens + " << max_new
              << " new exceeds the model's " << limit << "-token context; keeping the last " << keep << " prompt tokens\n";
    prompt.erase(prompt.begin(), prompt.end() - std::min<int64_t>(keep, static_cast<int64_t>(prompt.size())));
  }
  return prompt;
}

// Streams decoded text: decodes the whole generation each time and prints only the new suffix, so
// multi-byte characters split across tokens come out whole.
struct TextStreamer {
  const tokenizer::Tokenizer& tok;
  std::vector<int32_t> ids;
  std::string printed;
  void operator()(int64_t id) {
    ids.push_back(static_cast<int32_t>(id));
    std::string text = tok.decode(ids, true);
    if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
        (static_cast<unsigned char>(text.back()) < 0x80 || text.find("\xEF\xBF\xBD", printed.size()) == std::string::npos)) {
      std::cout << text.substr(printed.size()) << std::flush;
      printed = text;
    }
  }
};

struct GenerateCommand {
  std::string model_dir, prompt;
  bool json = false, no_special = false;
  SamplingFlags sampling;
  RuntimeFlags runtime;
  int run() {
    sampling.check();
    auto model = model::Transformer::load(model_dir, runtime.load_options());
    auto tok = tokenizer::Tokenizer::load(sampling.tokenizer_dir.empty() ? model_dir : sampling.tokenizer_dir);
    auto options = sampling.options(*model, tok);
    std::vector<int64_t> ids;
    for (int32_t id : tok.encode(prompt, !no_special)) ids.push_back(id);
    ids = fit_context(ids, *model, options.max_new_tokens);
    if (json) {
      // Token timestamps split the time into prefill (prompt pass + first token) and decode.
      using Clock = std::chrono::steady_clock;
      const auto start = Clock::now();
      std::vector<Clock::time_point> stamps;
      auto produced = model::generate(*model, ids, options, [&](int64_t) { stamps.push_back(Clock::now()); });
      std::vector<int32_t> out(produced.begin(), produced.end());
      nlohmann::json j = {{"prompt_ids", ids}, {"ids", produced}, {"text", tok.decode(out, true)}};
      if (!stamps.empty()) {
        const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
        j["timing"] = {{"prefill_tokens", ids.size()}, {"prefill_s", seconds(start, stamps.front())},
                       {"decode_tokens", stamps.size() - 1}, {"decode_s", seconds(stamps.front(), stamps.back())}};
      }
      std::cout << j.dump() << "\n";
      return 0;
    }
    std::cout << prompt << std::flush;
    TextStreamer streamer{tok, {}, {}};
    model::generate(*model, ids, options, [&](int64_t id) { streamer(id); });
    std::cout << "\n";
    return 0;
  }
};

struct ChatCommand {
  std::string model_dir, system;
  SamplingFlags sampling;
  RuntimeFlags runtime;
  int run() {
    sampling.check();
    auto model = model::Transformer::load(model_dir, runtime.load_options());
    std::string tok_dir = sampling.tokenizer_dir.empty() ? model_dir : sampling.tokenizer_dir;
    auto tok = tokenizer::Tokenizer::load(tok_dir);
    auto chat_template = chat::ChatTemplate::from_tokenizer_dir(tok_dir);
    if (sampling.max_new == 64) sampling.max_new = 256;
    auto options = sampling.options(*model, tok);
    chat::Json messages = chat::Json::array();
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    std::cerr << "moeforge chat: type a message; an empty line or end of input quits\n";
    std::string line;
    while (true) {
      std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line) || line.empty()) break;
      messages.push_back({{"role", "user"}, {"content", line}});
      chat::ChatTemplateInputs inputs;
      inputs.messages = messages;
      inputs.add_generation_prompt = true;
      std::string rendered = chat_template.render(inputs);
      std::vector<int64_t> ids;
      for (int32_t id : tok.encode(rendered, false)) ids.push_back(id);
      ids = fit_context(ids, *model, options.max_new_tokens);
      TextStreamer streamer{tok, {}, {}};
      model::generate(*model, ids, options, [&](int64_t id) { streamer(id); });
      std::cout << "\n";
      messages.push_back({{"role", "assistant"}, {"content", streamer.printed}});
    }
    return 0;
  }
};

const CommandRegistrar generate_registrar([](CLI::App& app) {
  auto c = std::make_shared<GenerateCommand>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt (KV cache, sampling, single-expert routing)");
  accepts_hub_id(sub->add_option("model", c->model_dir, "model directory"))->required();
  sub->add_option("--prompt", c->prompt, "prompt text")->required();
  sub->add_flag("--json", c->json, "print ids and text as JSON");
  sub->add_flag("--no-special", c->no_special, "do not add BOS/EOS to the prompt");
  c->sampling.add_to(sub);
  c->runtime.add_to(sub);
  set_action(sub, [c] { return c->run(); });
});

const CommandRegistrar chat_registrar([](CLI::App& app) {
  auto c = std::make_shared<ChatCommand>();
  auto* sub = app.add_subcommand("chat", "Interactive chat using the model's chat template, streaming tokens");
  accepts_hub_id(sub->add_option("model", c->model_dir, "model directory"))->required();
  sub->add_option("--system", c->system, "system message");
  c->sampling.add_to(sub);
  c->runtime.add_to(sub);
  set_action(sub, [c] { return c->run(); });
});

}  // namespace
}  // namespace moeforge::cli
