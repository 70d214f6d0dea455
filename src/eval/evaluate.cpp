#include "eval/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/progress.h"
#include "dist/world.h"

namespace moeforge::eval {

double balance_score(const std::vector<int64_t>& counts) {
  if (counts.size() < 2) return 1.0;
  double total = 0;
  for (auto c : counts) total += static_cast<double>(c);
  if (total <= 0) return 0.0;
  double entropy = 0;
  for (auto c : counts)
    if (c > 0) {
      double p = static_cast<double>(c) / total;
      entropy -= p * std::log(p);
    }
  return entropy / std::log(static_cast<double>(counts.size()));
}

namespace {

struct Batch {
  torch::Tensor ids;        // [B, T] padded with 0
  torch::Tensor attention;  // [B, T] 1 = real token
  torch::Tensor target;     // [B, T-1] 1 = this next-token prediction is scored
  std::vector<std::string> domains;
};

Batch make_batch(const std::vector<EvalSequence>& sequences, size_t begin, size_t end) {
  size_t longest = 0;
  for (size_t i = begin; i < end; ++i) longest = std::max(longest, sequences[i].ids.size());
  const int64_t B = static_cast<int64_t>(end - begin), T = static_cast<int64_t>(longest);
  Batch batch;
  batch.ids = torch::zeros({B, T}, torch::kInt64);
  batch.attention = torch::zeros({B, T}, torch::kInt64);
  auto target = torch::zeros({B, T}, torch::kFloat32);
  auto ids_a = batch.ids.accessor<int64_t, 2>();
  auto att_a = batch.attention.accessor<int64_t, 2>();
  auto tgt_a = target.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = sequences[begin + b];
    if (!s.loss_mask.empty() && s.loss_mask.size() != s.ids.size())
      fail("evaluation sequence ", begin + b, " has ", s.ids.size(), " ids but ", s.loss_mask.size(), " mask entries");
    for (size_t t = 0; t < s.ids.size(); ++t) {
      ids_a[b][t] = s.ids[t];
      att_a[b][t] = 1;
      tgt_a[b][t] = (t > 0 && (s.loss_mask.empty() || s.loss_mask[t])) ? 1.0f : 0.0f;
    }
    batch.domains.push_back(s.domain);
  }
  batch.target = target.narrow(1, 1, T - 1);  // position t+1 is predicted from t
  return batch;
}

void add_counts(std::vector<LayerUsage>& usage, const model::ForwardOutput& out, const torch::Tensor& real_rows,
                int64_t num_experts) {
  if (usage.empty())
    for (const auto& r : out.routing) usage.push_back({r.layer, std::vector<int64_t>(num_experts, 0), 0.0});
  for (size_t i = 0; i < out.routing.size(); ++i) {
    auto ids = out.routing[i].routing.expert_ids.index_select(0, real_rows).reshape({-1});
    auto counts = torch::bincount(ids.cpu(), {}, num_experts);
    auto a = counts.accessor<int64_t, 1>();
    for (int64_t e = 0; e < num_experts; ++e) usage[i].counts[e] += a[e];
  }
}

// Everything evaluate() accumulates over batches. With several ranks each sums its own batches; the
// sums travel as JSON (doubles round-trip exactly) and are added in rank order.
struct EvalSums {
  double loss = 0, baseline = 0, kl = 0, agree = 0, real_tokens = 0;
  int64_t tokens = 0;
  std::map<std::string, std::pair<double, int64_t>> domains;
  std::vector<LayerUsage> usage;
  std::map<std::string, std::vector<LayerUsage>> domain_usage;
  std::map<int64_t, std::pair<torch::Tensor, torch::Tensor>> probs;  // MoE layer -> (model, baseline) sum of p over real tokens

  static nlohmann::json usage_json(const std::vector<LayerUsage>& usage) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : usage) out.push_back({u.layer, u.counts});
    return out;
  }
  static void add_usage(std::vector<LayerUsage>& into, const nlohmann::json& j) {
    for (const auto& layer : j) {
      const int64_t l = layer[0].get<int64_t>();
      const auto counts = layer[1].get<std::vector<int64_t>>();
      auto it = std::find_if(into.begin(), into.end(), [&](const LayerUsage& u) { return u.layer == l; });
      if (it == into.end()) {
        into.push_back({l, counts, 0.0});
        continue;
      }
      for (size_t e = 0; e < counts.size(); ++e) it->counts[e] += counts[e];
    }
  }
  static std::vector<double> values(const torch::Tensor& t) {
    auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
    return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
  }

  nlohmann::json to_json() const {
    nlohmann::json j = {{"loss", loss}, {"baseline", baseline}, {"kl", kl}, {"agree", agree}, {"real", real_tokens},
                        {"tokens", tokens}, {"usage", usage_json(usage)}};
    for (const auto& [d, v] : domains) j["domains"].push_back({d, v.first, v.second});
    for (const auto& [d, u] : domain_usage) j["domain_usage"].push_back({d, usage_json(u)});
    for (const auto& [l, p] : probs) j["probs"].push_back({l, values(p.first), values(p.second)});
    return j;
  }

  void add(const nlohmann::json& j) {
    loss += j["loss"].get<double>(), baseline += j["baseline"].get<double>(), kl += j["kl"].get<double>();
    agree += j["agree"].get<double>(), real_tokens += j["real"].get<double>(), tokens += j["tokens"].get<int64_t>();
    add_usage(usage, j["usage"]);
    for (const auto& d : j.value("domains", nlohmann::json::array())) {
      auto& v = domains[d[0].get<std::string>()];
      v.first += d[1].get<double>(), v.second += d[2].get<int64_t>();
    }
    for (const auto& d : j.value("domain_usage", nlohmann::json::array())) add_usage(domain_usage[d[0].get<std::string>()], d[1]);
    for (const auto& p : j.value("probs", nlohmann::json::array())) {
      auto m = torch::tensor(p[1].get<std::vector<double>>(), torch::kFloat64);
      auto b = torch::tensor(p[2].get<std::vector<double>>(), torch::kFloat64);
      auto& acc = probs[p[0].get<int64_t>()];
      acc.first = acc.first.defined() ? acc.first + m : m;
      acc.second = acc.second.defined() ? acc.second + b : b;
    }
  }
};

// The model's logits of one batch's output: forward's, or formed from the hidden states of a
// layer-major group (forward_group).
torch::Tensor logits_of(const model::Transformer& model, const model::ForwardOutput& out) {
  return out.logits.defined() ? out.logits : model.head_logits(out.hidden);
}

// Every batch's output: one forward each, or for a streamed model one layer-major pass over the
// group. A group of several batches stops at the hidden states (the logits of all of them at once
// could exceed the budget; scoring forms them batch by batch), for a model that is not streamed too.
std::vector<model::ForwardOutput> forward_group(const model::Transformer& model, const std::vector<Batch>& group) {
  std::vector<model::ForwardOutput> outs;
  model::ForwardOptions forward;
  forward.hidden_only = group.size() > 1;
  if (group.size() == 1 || !model.streaming()) {
    for (const auto& batch : group) {
      forward.attention_mask = batch.attention.to(model.device());
      outs.push_back(model.forward(batch.ids, forward));
    }
    return outs;
  }
  std::vector<torch::Tensor> ids, masks;
  for (const auto& batch : group) ids.push_back(batch.ids), masks.push_back(batch.attention);
  forward.attention_mask = torch::cat(masks, 0).to(model.device());
  return model.forward_layer_major(ids, forward);
}

}  // namespace

EvalResult evaluate(const model::Transformer& model, const std::vector<EvalSequence>& sequences,
                    const EvalOptions& options, const model::Transformer* baseline) {
  if (sequences.empty()) fail("no evaluation data");
  int64_t compared = model.spec().vocab_size;  // ids the KL and agreement compare
  if (baseline) {
    const int64_t Vm = model.spec().vocab_size, Vb = baseline->spec().vocab_size;
    if (Vm != Vb && (options.compare_vocab <= 0 || options.compare_vocab > std::min(Vm, Vb)))
      fail("baseline vocabulary (", Vb, ") differs from the model's (", Vm, ")",
           options.compare_vocab > 0 ? " beyond a padded tail (the tokenizer has " + std::to_string(options.compare_vocab) + " ids)" : "");
    if (options.compare_vocab > 0) compared = std::min(compared, options.compare_vocab);
  }
  torch::NoGradGuard no_grad;
  EvalResult result;
  result.has_baseline = baseline != nullptr;
  EvalSums sums;
  const int64_t num_experts = model.spec().moe.num_experts;
  const size_t batch_size = static_cast<size_t>(std::max<int64_t>(1, options.batch_size));
  // Several ranks: batch i is rank i mod N's.
  const size_t rank = options.world ? static_cast<size_t>(options.world->rank()) : 0;
  const size_t ranks = options.world ? static_cast<size_t>(options.world->size()) : 1;
  Progress progress("eval", static_cast<int64_t>(sequences.size()), "sequences", options.progress && rank == 0);
  // A streamed model runs consecutive batches of one length as one layer-major group (each layer read
  // once per group); its logits are formed batch by batch from the hidden states while scoring.
  int64_t group_tokens = model.layer_major_group_tokens(options.layer_major_bytes);
  if (baseline) {
    const int64_t b = baseline->layer_major_group_tokens(options.layer_major_bytes);
    if (b > 0) group_tokens = group_tokens > 0 ? std::min(group_tokens, b) : b;
  }
  if (group_tokens > 0 && rank == 0)
    std::cerr << "moeforge: note: streaming: batches of one length run layer-major in groups of up to " << group_tokens
              << " tokens (each layer is read once per group)\n";
  std::vector<Batch> group;
  std::vector<size_t> group_ends;  // progress after each batch
  int64_t group_rows = 0;
  auto score = [&](const Batch& batch, const model::ForwardOutput& out, const model::ForwardOutput* base_out) {
    const int64_t B = batch.ids.size(0), T = batch.ids.size(1);
    auto logits = logits_of(model, out).narrow(1, 0, T - 1).cpu();          // [B, T-1, V]
    auto targets = batch.ids.narrow(1, 1, T - 1);                           // [B, T-1]
    auto log_probs = torch::log_softmax(logits, -1);
    auto nll = -log_probs.gather(2, targets.unsqueeze(-1)).squeeze(-1);     // [B, T-1]
    auto scored = batch.target;                                             // [B, T-1]
    sums.loss += (nll * scored).sum().item<double>();
    const int64_t scored_tokens = static_cast<int64_t>(scored.sum().item<double>());
    sums.tokens += scored_tokens;
    auto per_row_loss = (nll * scored).sum(1);
    auto per_row_count = scored.sum(1);
    for (int64_t b = 0; b < B; ++b) {
      auto& d = sums.domains[batch.domains[b]];
      d.first += per_row_loss[b].item<double>();
      d.second += static_cast<int64_t>(per_row_count[b].item<double>());
    }
    if (num_experts > 0 && !out.routing.empty()) {
      auto real_rows = batch.attention.reshape({-1}).nonzero().squeeze(-1).to(model.device());
      add_counts(sums.usage, out, real_rows, num_experts);
      for (int64_t b = 0; b < B; ++b) {
        auto rows = (batch.attention[b].nonzero().squeeze(-1) + b * T).to(model.device());
        add_counts(sums.domain_usage[batch.domains[b]], out, rows, num_experts);
      }
    }
    if (base_out) {
      auto base_logits = logits_of(*baseline, *base_out).narrow(1, 0, T - 1).cpu();
      auto base_nll = -torch::log_softmax(base_logits, -1).gather(2, targets.unsqueeze(-1)).squeeze(-1);
      sums.baseline += (base_nll * scored).sum().item<double>();
      // KL and agreement over the compared ids (a padded tail left out and each side renormalised).
      auto p_log = torch::log_softmax(base_logits.narrow(2, 0, compared), -1);
      auto q_log = compared == logits.size(2) ? log_probs : torch::log_softmax(logits.narrow(2, 0, compared), -1);
      auto kl = (p_log.exp() * (p_log - q_log)).sum(-1);  // KL(baseline || model) [B, T-1]
      sums.kl += (kl * scored).sum().item<double>();
      sums.agree += ((p_log.argmax(-1) == q_log.argmax(-1)).to(torch::kFloat32) * scored).sum().item<double>();
      auto real = batch.attention.reshape({-1}).to(torch::kFloat32);
      sums.real_tokens += real.sum().item<double>();
      for (const auto& m : out.routing)
        for (const auto& b : base_out->routing) {
          if (b.layer != m.layer) continue;
          auto pm = (m.routing.probs.to(torch::kFloat64).cpu() * real.unsqueeze(1).to(torch::kFloat64)).sum(0);
          auto pb = (b.routing.probs.to(torch::kFloat64).cpu() * real.unsqueeze(1).to(torch::kFloat64)).sum(0);
          auto& acc = sums.probs[m.layer];
          acc.first = acc.first.defined() ? acc.first + pm : pm;
          acc.second = acc.second.defined() ? acc.second + pb : pb;
        }
    }
  };
  auto run_group = [&] {
    if (group.empty()) return;
    auto outs = forward_group(model, group);
    std::vector<model::ForwardOutput> base_outs;
    if (baseline) base_outs = forward_group(*baseline, group);
    for (size_t i = 0; i < group.size(); ++i) {
      score(group[i], outs[i], baseline ? &base_outs[i] : nullptr);
      outs[i] = model::ForwardOutput();
      if (baseline) base_outs[i] = model::ForwardOutput();
      progress.update(static_cast<int64_t>(group_ends[i]));
    }
    model.end_streamed_pass();
    if (baseline) baseline->end_streamed_pass();
    group.clear(), group_ends.clear();
    group_rows = 0;
  };
  for (size_t begin = rank * batch_size; begin < sequences.size(); begin += batch_size * ranks) {
    const size_t end = std::min(sequences.size(), begin + batch_size);
    Batch batch = make_batch(sequences, begin, end);
    if (batch.ids.size(1) < 2) continue;
    if (!group.empty() && group.back().ids.size(1) != batch.ids.size(1)) run_group();  // a group has one length
    group_rows += batch.ids.numel();
    group.push_back(std::move(batch));
    group_ends.push_back(end);
    if (group_rows >= group_tokens) run_group();
  }
  run_group();
  progress.finish();
  if (ranks > 1) {  // every rank gets every rank's sums and adds them in rank order
    EvalSums all;
    for (const auto& text : options.world->all_gather_text(sums.to_json().dump())) all.add(nlohmann::json::parse(text));
    sums = std::move(all);
  }
  result.tokens = sums.tokens;
  result.usage = sums.usage;
  result.domain_usage = sums.domain_usage;
  if (result.tokens == 0) fail("evaluation data has no scored tokens (sequences shorter than 2 tokens?)");
  result.loss = sums.loss / static_cast<double>(result.tokens);
  result.perplexity = std::exp(result.loss);
  for (const auto& [domain, d] : sums.domains)
    if (d.second > 0) result.domain_loss[domain] = {d.first / static_cast<double>(d.second), d.second};
  double balance_total = 0;
  for (auto& layer : result.usage) {
    layer.balance = balance_score(layer.counts);
    balance_total += layer.balance;
  }
  for (auto& [domain, layers] : result.domain_usage)
    for (auto& layer : layers) layer.balance = balance_score(layer.counts);
  result.balance_score = result.usage.empty() ? 1.0 : balance_total / static_cast<double>(result.usage.size());
  result.balanced_perplexity = result.perplexity * std::exp(options.balance_beta * (1.0 - result.balance_score));
  if (baseline) {
    result.baseline_loss = sums.baseline / static_cast<double>(result.tokens);
    result.baseline_perplexity = std::exp(result.baseline_loss);
    result.mean_kl = sums.kl / static_cast<double>(result.tokens);
    result.top1_agreement = sums.agree / static_cast<double>(result.tokens);
    for (const auto& [layer, p] : sums.probs) {
      auto pm = p.first / sums.real_tokens, pb = p.second / sums.real_tokens;
      const int64_t E = std::max(pm.size(0), pb.size(0));  // a grown model's new experts: 0 on the baseline's side
      pm = torch::constant_pad_nd(pm, {0, E - pm.size(0)}), pb = torch::constant_pad_nd(pb, {0, E - pb.size(0)});
      result.router_drift.push_back({layer, (pm - pb).abs().sum().item<double>()});
    }
  }
  return result;
}

std::vector<EvalSequence> sequences_of(const data::Dataset& dataset, data::Split split, int64_t max_blocks) {
  const size_t available = dataset.num_blocks(split);
  size_t count = available;
  if (max_blocks > 0) count = std::min<size_t>(count, static_cast<size_t>(max_blocks));
  std::vector<EvalSequence> sequences;
  sequences.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    data::Block block = dataset.block(split, i * available / count);
    EvalSequence s;
    s.ids.assign(block.ids.begin(), block.ids.begin() + block.num_real);
    s.loss_mask.assign(block.loss_mask.begin(), block.loss_mask.begin() + block.num_real);
    s.domain = dataset.domains().at(block.domain);
    sequences.push_back(std::move(s));
  }
  return sequences;
}

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json j = {{"loss", r.loss}, {"perplexity", r.perplexity}, {"tokens", r.tokens},
                      {"balance_score", r.balance_score}, {"balanced_perplexity", r.balanced_perplexity}};
  auto usage_json = [](const std::vector<LayerUsage>& usage) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& u : usage) layers.push_back({{"layer", u.layer}, {"counts", u.counts}, {"balance", u.balance}});
    return layers;
  };
  j["expert_usage"] = usage_json(r.usage);
  for (const auto& [domain, v] : r.domain_loss) {
    j["domains"][domain.empty() ? "(none)" : domain] = {{"loss", v.first}, {"perplexity", std::exp(v.first)}, {"tokens", v.second}};
    auto it = r.domain_usage.find(domain);
    if (it != r.domain_usage.end()) j["domains"][domain.empty() ? "(none)" : domain]["expert_usage"] = usage_json(it->second);
  }
  if (r.has_baseline) {
    j["baseline"] = {{"loss", r.baseline_loss}, {"perplexity", r.baseline_perplexity}, {"mean_kl", r.mean_kl},
                     {"top1_agreement", r.top1_agreement}, {"router_drift", nlohmann::json::array()}};
    for (const auto& d : r.router_drift) j["baseline"]["router_drift"].push_back({{"layer", d.layer}, {"l1", d.l1}});
  }
  return j;
}

std::string to_table(const EvalResult& r) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %12s%s\n", "metric", "model", r.has_baseline ? "     baseline" : "");
  out << line;
  std::snprintf(line, sizeof line, "%-22s %12.4f", "loss (nats/token)", r.loss);
  out << line;
  if (r.has_baseline) {
    std::snprintf(line, sizeof line, " %12.4f", r.baseline_loss);
    out << line;
  }
  out << "\n";
  std::snprintf(line, sizeof line, "%-22s %12.3f", "perplexity", r.perplexity);
  out << line;
  if (r.has_baseline) {
    std::snprintf(line, sizeof line, " %12.3f", r.baseline_perplexity);
    out << line;
  }
  out << "\n";
  std::snprintf(line, sizeof line, "%-22s %12lld\n", "tokens scored", static_cast<long long>(r.tokens));
  out << line;
  if (!r.usage.empty()) {
    std::snprintf(line, sizeof line, "%-22s %12.4f\n%-22s %12.3f\n", "balance score", r.balance_score,
                  "balanced perplexity", r.balanced_perplexity);
    out << line;
  }
  if (r.has_baseline) {
    std::snprintf(line, sizeof line, "%-22s %12.5f\n%-22s %12.4f\n", "mean KL(base||model)", r.mean_kl, "top-1 agreement",
                  r.top1_agreement);
    out << line;
    if (!r.router_drift.empty()) {
      out << "router drift (L1 of mean expert probabilities):";
      for (const auto& d : r.router_drift) {
        std::snprintf(line, sizeof line, " L%lld %.4f", static_cast<long long>(d.layer), d.l1);
        out << line;
      }
      out << "\n";
    }
  }
  if (r.domain_loss.size() > 1 || (r.domain_loss.size() == 1 && !r.domain_loss.begin()->first.empty())) {
    out << "per domain:\n";
    for (const auto& [domain, v] : r.domain_loss) {
      std::snprintf(line, sizeof line, "  %-20s loss %.4f  ppl %.3f  (%lld tokens)\n", domain.empty() ? "(none)" : domain.c_str(),
                    v.first, std::exp(v.first), static_cast<long long>(v.second));
      out << line;
    }
  }
  for (const auto& u : r.usage) {
    int64_t total = 0;
    for (auto c : u.counts) total += c;
    out << "layer " << u.layer << " usage (balance " << std::fixed;
    out.precision(3);
    out << u.balance << "):";
    for (auto c : u.counts) {
      out.precision(2);
      out << " " << (total ? 100.0 * static_cast<double>(c) / static_cast<double>(total) : 0.0) << "%";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace moeforge::eval
