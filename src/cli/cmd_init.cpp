// `moeforge init`: write a randomly initialised checkpoint of any supported family from a tiny
// default config merged with --config (JSON file or inline), deterministic by --seed.
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "common/strings.h"
#include "init/random_init.h"

namespace moeforge::cli {
namespace {

struct InitCommandOptions {
  init::InitOptions init;
  std::string config, dtype = "fp32", tokenizer, out;
};

CommandRegistrar init_command([](CLI::App& app) {
  auto o = std::make_shared<InitCommandOptions>();
  auto* sub = app.add_subcommand("init", "Write a randomly initialised checkpoint of any supported family");
  sub->add_option("--family", o->init.family, "model_type: llama, mistral, qwen2, qwen3, gpt_neo, mixtral, qwen2_moe, qwen3_moe, "
                                               "olmoe, gpt_oss, deepseek_v3, gpt_neo_moe");
  sub->add_option("--config", o->config, "Config overrides: a JSON file, or inline JSON ('{\"hidden_size\": 128}')");
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->add_option("--seed", o->init.seed, "Random seed")->capture_default_str();
  sub->add_option("--std", o->init.std, "Standard deviation of the normal init")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "fp32 | bf16")->capture_default_str();
  accepts_hub_id(sub->add_option("--tokenizer", o->tokenizer, "Tokenizer directory: sets vocab_size and bos/eos/pad ids, files copied"));
  sub->add_flag("--overwrite", o->init.overwrite, "Replace an existing output directory");
  set_action(sub, [o] {
    if (!o->config.empty()) o->init.config = init::parse_config_argument(o->config);
    if (o->dtype == "fp32" || o->dtype == "float32") o->init.dtype = DType::F32;
    else if (o->dtype == "bf16" || o->dtype == "bfloat16") o->init.dtype = DType::BF16;
    else fail("--dtype must be fp32 or bf16 (got '", o->dtype, "')");
    o->init.out = o->out;
    o->init.tokenizer = o->tokenizer;
    init::InitResult r = init::init_model(o->init);
    std::cout << "wrote " << r.path.string() << ": " << r.config["model_type"].get<std::string>() << ", "
              << human_count(r.parameters) << " parameters, " << r.tensors << " tensors, " << human_bytes(r.bytes) << "\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
