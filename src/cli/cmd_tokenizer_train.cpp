// `moeforge tokenizer train`: train a byte-level BPE on a --data spec and write a Hugging Face
// tokenizer.json + tokenizer_config.json (bos/eos/pad, ChatML chat template).
#include <chrono>
#include <iostream>

#include "cli/commands.h"
#include "common/error.h"
#include "common/strings.h"
#include "init/bpe_trainer.h"

namespace moeforge::cli {
namespace {

struct TrainCommandOptions {
  init::BpeTrainOptions train;
  std::string spec, out, special, doc_sep;
  bool no_chat_template = false;
};

CommandRegistrar tokenizer_command([](CLI::App& app) {
  auto* parent = app.add_subcommand("tokenizer", "Tokenizer tools (train)");
  parent->require_subcommand(1);
  auto o = std::make_shared<TrainCommandOptions>();
  auto* sub = parent->add_subcommand("train", "Train a byte-level BPE tokenizer (Hugging Face tokenizer.json)");
  sub->add_option("--vocab", o->train.vocab_size, "Vocabulary size (special and 256 byte tokens included)")
      ->required()->check(CLI::PositiveNumber);
  sub->add_option("--data", o->spec, "Data spec (files, directory, mixture)")->required();
  sub->add_option("--out", o->out, "Output directory")->required();
  sub->add_option("--special-tokens", o->special, "Comma-separated special tokens (ids 0..n-1)")
      ->default_str("<|endoftext|>,<|pad|>,<|im_start|>,<|im_end|>");
  sub->add_option("--bos-token", o->train.bos_token, "BOS token ('' = none)")->capture_default_str();
  sub->add_option("--eos-token", o->train.eos_token, "EOS token")->capture_default_str();
  sub->add_option("--pad-token", o->train.pad_token, "PAD token ('' = none)")->capture_default_str();
  sub->add_option("--min-frequency", o->train.min_frequency, "Stop merging below this pair count")->capture_default_str();
  sub->add_option("--max-bytes", o->train.max_bytes, "Read at most this many bytes of text (0 = all)")->capture_default_str();
  sub->add_option("--text-field", o->train.records.text_field, "JSONL text field")->capture_default_str();
  sub->add_option("--doc-sep", o->doc_sep, ".txt files: document separator (default: one per line)");
  sub->add_flag("--no-chat-template", o->no_chat_template, "Do not write the ChatML chat template");
  set_action(sub, [o] {
    if (!o->special.empty()) o->train.special_tokens = split(o->special, ',');
    if (!o->doc_sep.empty()) o->train.records.doc_sep = o->doc_sep;
    o->train.chat_template = !o->no_chat_template;
    auto start = std::chrono::steady_clock::now();
    std::vector<std::string> texts = init::read_training_texts(o->spec, o->train);
    init::BpeModelData model = init::train_bpe(texts, o->train);
    init::write_tokenizer(o->out, model, o->train);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "wrote " << o->out << "/tokenizer.json: " << model.vocab.size() << " tokens, " << model.merges.size()
              << " merges from " << human_bytes(model.bytes_seen) << " of text (" << model.unique_pre_tokens
              << " distinct pre-tokens) in " << seconds << " s\n";
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
