// `moeforge forward MODEL (--ids 1,2,3 | --text T) --out FILE.safetensors`: runs one sequence and
// writes `logits` [T, V] and each MoE layer's `router_logits.L` [T, E] in float32 (a parity tool).
#include <torch/torch.h>

#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "cli/torch/runtime_flags.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/atomic_file.h"
#include "io/checkpoint_writer.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

struct ForwardCommand {
  std::string model_dir, ids_text, text, out, force_expert;
  RuntimeFlags runtime;

  std::vector<int64_t> token_ids() const {
    if (!ids_text.empty() == !text.empty()) fail("give exactly one of --ids or --text");
    std::vector<int64_t> ids;
    if (!ids_text.empty()) {
      for (const auto& part : split(ids_text, ',')) {
        try {
          size_t used = 0;
          ids.push_back(std::stoll(part, &used));
          if (used != part.size()) throw std::invalid_argument(part);
        } catch (const std::exception&) {
          fail("--ids: '", part, "' is not an integer token id");
        }
      }
      return ids;
    }
    auto tok = tokenizer::Tokenizer::load(model_dir);
    for (int32_t id : tok.encode(text, true)) ids.push_back(id);
    return ids;
  }

  int run() const {
    if (!force_expert.empty()) parse_force_expert(force_expert, nullptr);  // syntax errors before loading
    auto model = model::Transformer::load(model_dir, runtime.load_options());
    std::vector<int64_t> ids = token_ids();
    if (ids.empty()) fail("the input has no tokens");
    torch::NoGradGuard no_grad;
    model::ForwardOptions options;
    if (!force_expert.empty()) options.force_expert = parse_force_expert(force_expert, &model->spec());
    auto output = model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), options);
    std::vector<std::pair<TensorDecl, std::string>> tensors;
    auto add = [&](const std::string& name, torch::Tensor t) {
      t = t.to(torch::kCPU, torch::kFloat32).contiguous();
      std::string bytes(reinterpret_cast<const char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
      tensors.push_back({TensorDecl{name, DType::F32, t.sizes().vec()}, std::move(bytes)});
    };
    add("logits", output.logits[0]);
    for (const auto& record : output.routing) add("router_logits." + std::to_string(record.layer), record.logits);
    write_file_atomic(out, serialize_safetensors(tensors, {{"format", "pt"}, {"producer", "moeforge forward"}}));
    std::cout << "wrote " << out << ": logits [" << ids.size() << ", " << output.logits.size(-1) << "], "
              << output.routing.size() << " router_logits tensors\n";
    return 0;
  }
};

const CommandRegistrar registrar([](CLI::App& app) {
  auto command = std::make_shared<ForwardCommand>();
  auto* sub = app.add_subcommand("forward", "Run one sequence; write logits and router logits (parity/debugging)");
  accepts_hub_id(sub->add_option("model", command->model_dir, "model directory"))->required();
  sub->add_option("--ids", command->ids_text, "comma-separated token ids");
  sub->add_option("--text", command->text, "text, tokenized with the model's tokenizer.json");
  sub->add_option("--out", command->out, "output .safetensors file")->required();
  sub->add_option("--force-expert", command->force_expert, "LAYER:EXPERT[,..] route every token of a layer to one expert (*:E every MoE layer; -1 the last layer)");
  command->runtime.add_to(sub);
  set_action(sub, [command] { return command->run(); });
});

}  // namespace
}  // namespace moeforge::cli
