// Enum surgery options: one name table per enum drives parsing, the error and to_string.
#include "surgery/surgery_options.h"

#include <utility>
#include <vector>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge::surgery {
namespace {

template <typename E>
using Names = std::vector<std::pair<const char*, E>>;

// "a, b or c"
template <typename E>
std::string choices(const Names<E>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + std::string(names[i].first);
  return out;
}

template <typename E>
E parse_named(const Names<E>& names, const std::string& text, const std::string& flag) {
  for (const auto& [name, value] : names)
    if (text == name) return value;
  fail(flag, ": '", text, "' is not ", choices(names));
}

template <typename E>
const char* name_of(const Names<E>& names, E value) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  return "?";
}

const Names<UpcycleMethod>& method_names() {
  static const Names<UpcycleMethod> n = {{"copy", UpcycleMethod::Copy}, {"noise", UpcycleMethod::Noise},
                                         {"drop", UpcycleMethod::Drop}, {"granular", UpcycleMethod::Granular}};
  return n;
}
const Names<RouterInit>& router_names() {
  static const Names<RouterInit> n = {{"zero", RouterInit::Zero},          {"normal", RouterInit::Normal},
                                      {"ffn_input", RouterInit::FfnInput},  {"hidden", RouterInit::Hidden},
                                      {"hidden_avg", RouterInit::HiddenAvg}, {"cheap_embed", RouterInit::CheapEmbed},
                                      {"random", RouterInit::Random},       {"uniform_random", RouterInit::UniformRandom}};
  return n;
}
const Names<NonFfnSource>& non_ffn_names() {
  static const Names<NonFfnSource> n = {{"average", NonFfnSource::Average}, {"base", NonFfnSource::Base}};
  return n;
}
const Names<CloneOffset>& offset_names() {
  static const Names<CloneOffset> n = {{"auto", CloneOffset::Auto}, {"split", CloneOffset::Split}, {"none", CloneOffset::None}};
  return n;
}
const Names<SharedGate>& gate_names() {
  static const Names<SharedGate> n = {{"fixed", SharedGate::Fixed}, {"learned", SharedGate::Learned}, {"sigmoid", SharedGate::Sigmoid}};
  return n;
}
using InitKind = SharedInit::Kind;
const Names<InitKind>& init_names() {
  static const Names<InitKind> n = {{"mean", InitKind::Mean},          {"random", InitKind::Random},
                                    {"top1", InitKind::Top1},          {"top1_average", InitKind::Top1Average},
                                    {"top4_average", InitKind::Top4Average}};
  return n;
}

}  // namespace

UpcycleMethod parse_upcycle_method(const std::string& t, const std::string& flag) { return parse_named(method_names(), t, flag); }
RouterInit parse_router_init(const std::string& t, const std::string& flag) { return parse_named(router_names(), t, flag); }
bool router_needs_prompts(RouterInit v) {
  return v == RouterInit::FfnInput || v == RouterInit::Hidden || v == RouterInit::HiddenAvg || v == RouterInit::CheapEmbed;
}
NonFfnSource parse_non_ffn(const std::string& t, const std::string& flag) { return parse_named(non_ffn_names(), t, flag); }
CloneOffset parse_clone_offset(const std::string& t, const std::string& flag) { return parse_named(offset_names(), t, flag); }
SharedGate parse_shared_gate(const std::string& t, const std::string& flag) { return parse_named(gate_names(), t, flag); }

SharedInit parse_shared_init(const std::string& text, const std::string& flag) {
  SharedInit init;
  if (starts_with(text, "pca_top")) {
    const std::string digits = text.substr(7);
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos)
      fail(flag, ": '", text, "': pca_topK needs a number K (e.g. pca_top4)");
    init.kind = InitKind::PcaTop;
    init.k = std::stoll(digits);
    return init;
  }
  for (const auto& [name, kind] : init_names())
    if (text == name) {
      init.kind = kind;
      return init;
    }
  fail(flag, ": '", text, "' is not mean, random, top1, top1_average, top4_average or pca_topK");
}

SelectionBiasSpec parse_selection_bias(const std::string& text, const std::string& flag) {
  SelectionBiasSpec spec;
  if (text.empty()) return spec;
  const size_t colon = text.find(':');
  const std::string target = text.substr(0, colon);
  if (colon == std::string::npos || (target != "old" && target != "new"))
    fail(flag, ": '", text, "' is not old:VALUE or new:VALUE");
  const std::string number = text.substr(colon + 1);
  try {
    size_t used = 0;
    spec.value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument(number);
  } catch (const std::exception&) {
    fail(flag, ": '", number, "' is not a number");
  }
  spec.target = target == "old" ? SelectionBiasSpec::Target::Old : SelectionBiasSpec::Target::New;
  return spec;
}

const char* to_string(UpcycleMethod v) { return name_of(method_names(), v); }
const char* to_string(RouterInit v) { return name_of(router_names(), v); }
const char* to_string(NonFfnSource v) { return name_of(non_ffn_names(), v); }
const char* to_string(CloneOffset v) { return name_of(offset_names(), v); }
const char* to_string(SharedGate v) { return name_of(gate_names(), v); }

std::string to_string(const SharedInit& v) {
  if (v.kind == InitKind::PcaTop) return "pca_top" + std::to_string(v.k);
  return name_of(init_names(), v.kind);
}

std::string to_string(const SelectionBiasSpec& v) {
  if (v.empty()) return "";
  return cat(v.target == SelectionBiasSpec::Target::Old ? "old:" : "new:", v.value);
}

}  // namespace moeforge::surgery
