// Selector terms -> Selection (canonical tensor name -> expert mask), composed by +, - and &.
#include "train/selectors.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge::train {

namespace {

using Group = model::TensorGroup;

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

int64_t parse_index(const std::string& text, const std::string& where, const std::string& term) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (...) {
  }
  fail(where, ": '", term, "': '", text, "' is not a non-negative integer");
}

std::vector<bool> full_mask(const ParamInfo& p, bool value) {
  return std::vector<bool>(p.num_experts > 0 ? p.num_experts : 1, value);
}

// The selection of one term.
Selection evaluate_term(const std::string& term, const SelectorContext& c, const std::string& where) {
  Selection out;
  const ModelSpec& spec = *c.spec;
  auto pick_all_if = [&](auto predicate) {
    for (const auto& p : c.params)
      if (predicate(p)) out[p.name] = full_mask(p, true);
  };
  auto pick_group = [&](Group group) { pick_all_if([&](const ParamInfo& p) { return p.group == group; }); };
  auto pick_experts = [&](const std::map<int64_t, std::vector<int64_t>>& experts) {
    for (const auto& p : c.params) {
      if (p.num_experts == 0) continue;
      auto it = experts.find(p.layer);
      if (it == experts.end()) continue;
      std::vector<bool> mask(p.num_experts, false);
      for (int64_t e : it->second) mask.at(e) = true;
      out[p.name] = mask;
    }
  };
  if (term == "all") {
    pick_all_if([](const ParamInfo& p) { return p.group != Group::SelectionBias; });
  } else if (term == "experts") {
    pick_group(Group::Experts);
  } else if (starts_with(term, "experts=plan:")) {
    if (!c.analysis_plan) fail(where, ": '", term, "' needs an analyze plan (moeforge train --plan plan.json)");
    auto experts = plan_esft_experts(*c.analysis_plan, term.substr(13), c.analysis_plan_label);
    for (const auto& [layer, list] : experts) {
      if (layer < 0 || layer >= spec.num_layers || !spec.is_moe[layer])
        fail(c.analysis_plan_label, ": layer ", layer, " is not an MoE layer of this model");
      for (int64_t e : list)
        if (e < 0 || e >= spec.moe.num_experts)
          fail(c.analysis_plan_label, ": layer ", layer, " expert ", e, " is out of range (the model has ",
               spec.moe.num_experts, " experts)");
    }
    pick_experts(experts);
  } else if (starts_with(term, "experts=")) {
    pick_experts(parse_layer_experts(term.substr(8), spec, where));
  } else if (term == "new_experts") {
    if (!c.new_experts) fail(where, ": 'new_experts' needs the grow record moeforge_grow.json in the model directory");
    pick_experts(*c.new_experts);
  } else if (term == "router") {
    pick_group(Group::Router);
  } else if (term == "shared_expert") {
    pick_group(Group::SharedExpert);
  } else if (term == "norms") {
    pick_group(Group::Norm);
  } else if (term == "attention") {
    pick_group(Group::Attention);
  } else if (term == "mlp") {
    pick_group(Group::Mlp);
  } else if (term == "embeddings") {
    pick_group(Group::Embedding);
  } else if (term == "lm_head") {
    bool untied = std::any_of(c.params.begin(), c.params.end(), [](const ParamInfo& p) { return p.group == Group::LmHead; });
    if (untied) pick_group(Group::LmHead);
    else pick_all_if([](const ParamInfo& p) { return p.local_name == "embed"; });  // tied: the LM head is the embedding
  } else if (starts_with(term, "layers=")) {
    std::string range = term.substr(7);
    size_t dash = range.find('-');
    int64_t a = parse_index(range.substr(0, dash), where, term);
    int64_t b = dash == std::string::npos ? a : parse_index(range.substr(dash + 1), where, term);
    if (a > b || b >= spec.num_layers)
      fail(where, ": '", term, "': layers must satisfy a <= b < ", spec.num_layers);
    pick_all_if([&](const ParamInfo& p) { return p.layer >= a && p.layer <= b && p.group != Group::SelectionBias; });
  } else if (term.find_first_of("*?[.") != std::string::npos) {
    pick_all_if([&](const ParamInfo& p) { return fnmatch(term.c_str(), p.name.c_str(), 0) == 0; });
  } else {
    fail(where, ": unknown selector '", term,
         "' (use all, experts, experts=L:E, new_experts, router, shared_expert, norms, attention, mlp, embeddings, "
         "lm_head, layers=a-b, or a glob over names listed by --list-params)");
  }
  if (out.empty()) fail(where, ": '", term, "' selects no tensor of this model");
  return out;
}

void combine(Selection& acc, const Selection& term, char op) {
  if (op == '+') {
    for (const auto& [name, mask] : term) {
      auto& m = acc[name];
      if (m.empty()) m.assign(mask.size(), false);
      for (size_t i = 0; i < mask.size(); ++i) m[i] = m[i] || mask[i];
    }
  } else {
    for (auto it = acc.begin(); it != acc.end();) {
      auto other = term.find(it->first);
      for (size_t i = 0; i < it->second.size(); ++i) {
        bool o = other != term.end() && other->second[i];
        it->second[i] = op == '-' ? it->second[i] && !o : it->second[i] && o;
      }
      if (std::none_of(it->second.begin(), it->second.end(), [](bool b) { return b; })) it = acc.erase(it);
      else ++it;
    }
  }
}

}  // namespace

std::map<int64_t, std::vector<int64_t>> plan_esft_experts(const nlohmann::json& plan, const std::string& which,
                                                          const std::string& label) {
  if (!plan.is_object() || !plan.contains("esft") || !plan["esft"].is_object())
    fail(label, ": no \"esft\" section (write the plan with `moeforge analyze`)");
  const auto& esft = plan["esft"];
  const nlohmann::json* sets = nullptr;
  std::string key;
  if (which == "esft") {
    key = "esft.experts";
    if (esft.contains("experts")) sets = &esft["experts"];
  } else if (which == "esft:all") {
    key = "esft.all";
    if (esft.contains("all")) sets = &esft["all"];
  } else if (starts_with(which, "esft:")) {
    const std::string domain = which.substr(5);
    key = "esft.domains." + domain;
    if (esft.contains("domains") && esft["domains"].is_object() && esft["domains"].contains(domain))
      sets = &esft["domains"][domain];
    else if (esft.contains("domains") && esft["domains"].is_object()) {
      std::string known;
      for (const auto& [d, v] : esft["domains"].items()) known += (known.empty() ? "" : ", ") + d;
      fail(label, ": no ESFT set for domain '", domain, "' (domains: ", known.empty() ? "none" : known, ")");
    }
  } else {
    fail(label, ": 'experts=plan:", which, "' is not experts=plan:esft, experts=plan:esft:all or experts=plan:esft:DOMAIN");
  }
  if (!sets || !sets->is_object()) fail(label, ": ", key, " is missing or not an object of layer -> experts");
  std::map<int64_t, std::vector<int64_t>> out;
  for (const auto& [layer, list] : sets->items()) {
    int64_t l = -1;
    try {
      size_t used = 0;
      l = std::stoll(layer, &used);
      if (used != layer.size()) l = -1;
    } catch (...) {
    }
    if (l < 0 || !list.is_array()) fail(label, ": ", key, ".", layer, ": expected a layer index mapping to a list of experts");
    for (const auto& e : list) {
      if (!e.is_number_integer()) fail(label, ": ", key, ".", layer, ": expert ids must be integers");
      out[l].push_back(e.get<int64_t>());
    }
  }
  return out;
}

NewExperts parse_grow_record(const nlohmann::json& record, const std::string& label) {
  NewExperts out;
  if (!record.is_object() || !record.contains("layers") || !record["layers"].is_object())
    fail(label, ": expected an object with \"layers\": {\"L\": [...]}");
  for (auto it = record["layers"].begin(); it != record["layers"].end(); ++it) {
    int64_t layer = -1;
    try {
      layer = std::stoll(it.key());
    } catch (...) {
      fail(label, ": layers.", it.key(), ": layer key is not an integer");
    }
    const auto& v = it.value();
    std::vector<int64_t> experts;
    auto take = [&](const nlohmann::json& list) {
      for (const auto& e : list) {
        if (e.is_number_integer()) experts.push_back(e.get<int64_t>());
        else if (e.is_object() && e.contains("index") && e["index"].is_number_integer()) experts.push_back(e["index"].get<int64_t>());
        else fail(label, ": layers.", it.key(), ": entries must be expert indices or {\"index\": e, ...}");
      }
    };
    if (v.is_array()) take(v);
    else if (v.is_object() && v.contains("new") && v["new"].is_array()) take(v["new"]);
    else fail(label, ": layers.", it.key(), ": expected a list of new experts or {\"new\": [...]}");
    std::sort(experts.begin(), experts.end());
    if (!experts.empty()) out[layer] = experts;
  }
  return out;
}

std::map<int64_t, std::vector<int64_t>> parse_layer_experts(const std::string& text, const ModelSpec& spec, const std::string& where) {
  std::map<int64_t, std::vector<int64_t>> out;
  for (const auto& item : split(text, ',')) {
    std::string pair = trim(item);
    size_t colon = pair.find(':');
    if (colon == std::string::npos) fail(where, ": '", pair, "' is not L:E (layer:expert)");
    std::string ls = pair.substr(0, colon), es = pair.substr(colon + 1);
    std::vector<int64_t> layers, experts;
    if (ls == "*") {
      for (int64_t l = 0; l < spec.num_layers; ++l)
        if (spec.is_moe[l]) layers.push_back(l);
    } else {
      layers.push_back(parse_index(ls, where, pair));
    }
    if (es == "*") {
      for (int64_t e = 0; e < spec.moe.num_experts; ++e) experts.push_back(e);
    } else {
      experts.push_back(parse_index(es, where, pair));
    }
    for (int64_t l : layers) {
      if (l >= spec.num_layers || !spec.is_moe[l]) fail(where, ": '", pair, "': layer ", l, " is not a MoE layer of this model");
      for (int64_t e : experts) {
        if (e >= spec.moe.num_experts) fail(where, ": '", pair, "': expert ", e, " is outside [0, ", spec.moe.num_experts, ")");
        auto& list = out[l];
        if (std::find(list.begin(), list.end(), e) == list.end()) list.push_back(e);
      }
    }
  }
  for (auto& [l, list] : out) std::sort(list.begin(), list.end());
  return out;
}

Selection resolve_selection(const std::vector<std::string>& terms, const SelectorContext& context, const std::string& where) {
  // Tokenise: each list entry may itself hold "a + b - c".
  std::vector<std::pair<char, std::string>> ops;
  for (const auto& entry : terms) {
    char pending = '+';
    std::string text = entry;
    for (char& ch : text)
      if (ch == '\t' || ch == '\n') ch = ' ';
    for (const auto& raw : split(text, ' ')) {
      std::string tok = trim(raw);
      if (tok.empty()) continue;
      if (tok == "+" || tok == "-" || tok == "&") {
        pending = tok[0];
        continue;
      }
      if ((tok[0] == '-' || tok[0] == '+' || tok[0] == '&') && tok.size() > 1) {
        pending = tok[0];
        tok = tok.substr(1);
      }
      ops.emplace_back(pending, tok);
      pending = '+';
    }
  }
  if (ops.empty()) fail(where, ": no selector terms");
  Selection acc;
  for (const auto& [op, term] : ops) combine(acc, evaluate_term(term, context, where), op);
  if (acc.empty()) fail(where, ": the selectors leave nothing to train");
  return acc;
}

std::vector<int64_t> selected_units(const std::vector<bool>& mask) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) out.push_back(static_cast<int64_t>(i));
  return out;
}

bool selects_all(const std::vector<bool>& mask) {
  return std::all_of(mask.begin(), mask.end(), [](bool b) { return b; });
}

}  // namespace moeforge::train
