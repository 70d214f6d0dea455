// Surgery options with a fixed set of values, as enums: each parsed once from its flag or job-file
// text with one error that lists the choices ("--offset: 'x' is not auto, split or none"), and
// named back for records and messages. Torch-free.
#pragma once

#include <cstdint>
#include <string>

namespace moeforge::surgery {

enum class UpcycleMethod : uint8_t { Copy, Noise, Drop, Granular };  // expert_init.h
// New routers of upcycle / merge (surgery/router_init.h has each formula): moeforge's own zero,
// normal (N(0, --router-std^2)) and ffn_input, and mergekit-moe's gate modes under mergekit's names.
enum class RouterInit : uint8_t { Zero, Normal, FfnInput, Random, UniformRandom, Hidden, HiddenAvg, CheapEmbed };
enum class NonFfnSource : uint8_t { Average, Base };                  // merge: attention, norms, embeddings
enum class CloneOffset : uint8_t { Auto, Split, None };               // grow: router rows of clones (grow.h)
enum class SharedGate : uint8_t { Fixed, Learned, Sigmoid };          // add-shared-expert

// add-shared-expert --init: mean | random | top1 | top1_average | top4_average | pca_topK.
struct SharedInit {
  enum class Kind : uint8_t { Mean, Random, Top1, Top1Average, Top4Average, PcaTop };
  Kind kind = Kind::Mean;
  int64_t k = 0;  // PcaTop: K (checked against the model's experts later)
};

// grow --router-bias old:VALUE | new:VALUE: a selection-only bias on the old experts or the clones.
struct SelectionBiasSpec {
  enum class Target : uint8_t { None, Old, New };
  Target target = Target::None;
  double value = 0.0;
  bool empty() const { return target == Target::None; }
};

// Parsers: `flag` ("--offset", "surgery.grow.offset") prefixes the error.
UpcycleMethod parse_upcycle_method(const std::string& text, const std::string& flag = "--method");
RouterInit parse_router_init(const std::string& text, const std::string& flag = "--router");
// Whether a router init reads per-expert prompts (ffn_input, hidden, hidden_avg, cheap_embed).
bool router_needs_prompts(RouterInit value);
NonFfnSource parse_non_ffn(const std::string& text, const std::string& flag = "--non-ffn");
CloneOffset parse_clone_offset(const std::string& text, const std::string& flag = "--offset");
SharedGate parse_shared_gate(const std::string& text, const std::string& flag = "--gate");
SharedInit parse_shared_init(const std::string& text, const std::string& flag = "--init");
SelectionBiasSpec parse_selection_bias(const std::string& text, const std::string& flag = "--router-bias");

const char* to_string(UpcycleMethod value);
const char* to_string(RouterInit value);
const char* to_string(NonFfnSource value);
const char* to_string(CloneOffset value);
const char* to_string(SharedGate value);
std::string to_string(const SharedInit& value);
std::string to_string(const SelectionBiasSpec& value);  // "" when empty, else "old:1" (the text it came from)

}  // namespace moeforge::surgery
