// `moeforge export-gguf MODEL --out F.gguf [--type f32|f16|bf16|q8_0]`: a GGUF file for llama.cpp
// (gguf/gguf_export.h).
#include "cli/commands.h"
#include "gguf/gguf_export.h"

namespace moeforge::cli {
namespace {

const CommandRegistrar registrar([](CLI::App& app) {
  auto o = std::make_shared<GgufExportOptions>();
  auto model = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("export-gguf", "Write a model as one GGUF file for llama.cpp (tokenizer included)");
  accepts_hub_id(sub->add_option("model", *model, "model directory (or a Hugging Face id in the local cache)"))->required();
  sub->add_option("--out", *out, "the .gguf file to write")->required();
  sub->add_option("--type", o->type, "type of the 2-D weights: f32, f16 (default, as llama.cpp's converter), bf16, q8_0; "
                                     "norms, biases and routers stay f32, GPT-OSS MXFP4 experts stay MXFP4")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  sub->add_flag("--overwrite", o->overwrite, "replace an existing --out file");
  sub->add_flag("--verbose", o->verbose, "list every tensor with its type and dims");
  set_action(sub, [o, model, out] {
    o->model = *model;
    o->out = *out;
    export_gguf(*o);
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
