// Dataset opening: spec -> token files (cached) -> (file, domain) groups -> train/validation split
// -> packed blocks, plus the report that stats, eval and the CLI print.
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>

#include "chat/chat_template.h"
#include "common/error.h"
#include "data/dataset_impl.h"
#include "data/hash.h"
#include "data/shuffle.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::data {
namespace fs = std::filesystem;

const char* to_string(Split split) { return split == Split::Train ? "train" : "validation"; }
const char* to_string(PackMode mode) { return mode == PackMode::Concat ? "concat" : "per-document"; }

PackMode parse_pack_mode(const std::string& text) {
  if (text == "concat") return PackMode::Concat;
  if (text == "per-document" || text == "per_document") return PackMode::PerDocument;
  fail("unknown packing mode '", text, "' (use concat or per-document)");
}

namespace {

void validate(const DataOptions& o) {
  if (o.block_size < 2) fail("block size must be at least 2 (got ", o.block_size, ")");
  if (!(o.validation_fraction >= 0.0 && o.validation_fraction < 1.0))
    fail("validation fraction must be in [0, 1) (got ", o.validation_fraction, ")");
  if (!(o.max_bad_fraction >= 0.0)) fail("--max-bad-fraction must be >= 0 (got ", o.max_bad_fraction, ")");
}

// Seeded train/validation choice for one group of `n` documents.
std::vector<bool> choose_validation(size_t n, double fraction, uint64_t seed, const std::string& file,
                                    const std::string& domain) {
  std::vector<bool> is_val(n, false);
  if (fraction <= 0.0 || n < 2) return is_val;
  size_t count = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  count = std::clamp<size_t>(count, 1, n - 1);
  uint64_t group_seed = Hasher(seed).field(file).field(domain).update_u64(n).digest();
  std::vector<uint32_t> order = seeded_permutation(static_cast<uint32_t>(n), group_seed);
  for (size_t k = 0; k < count; ++k) is_val[order[k]] = true;
  return is_val;
}

}  // namespace

Dataset::Dataset() : impl_(std::make_unique<Impl>()) {}
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

namespace {

// Records skipped as bad: an error above the threshold (or when every record is bad), else a warning.
void check_bad_records(const std::string& spec, const DataReport& r, const DataOptions& options) {
  const size_t bad = r.bad_records.count;
  if (bad == 0) return;
  size_t good = 0;
  for (const auto& s : r.sources) good += s.records;
  const size_t total = good + bad;
  std::string first;
  for (size_t i = 0; i < std::min<size_t>(3, r.bad_records.examples.size()); ++i)
    first += (i ? "; " : "") + r.bad_records.examples[i].where() + ": " + r.bad_records.examples[i].reason;
  if (bad > 3) first += "; ...";
  const double share = static_cast<double>(bad) / static_cast<double>(total);
  char pct[32], max_pct[32];
  std::snprintf(pct, sizeof pct, "%.3g%%", 100 * share);
  std::snprintf(max_pct, sizeof max_pct, "%.3g%%", 100 * options.max_bad_fraction);
  if (good == 0) fail("--data '", spec, "': all ", bad, " records are bad: ", first);
  if (share > options.max_bad_fraction)
    fail("--data '", spec, "': ", bad, " of ", total, " records (", pct, ") are bad, above --max-bad-fraction ", max_pct, ": ", first,
         " (`moeforge data inspect` lists them; fix them or raise --max-bad-fraction)");
  // Once per spec and process: a run opens its data once per phase (and the pipeline per stage).
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (options.warn_bad_records && warned.insert(spec).second)
    std::cerr << "moeforge: warning: --data '" << spec << "': skipped " << bad << " of " << total << " records (" << pct << "): " << first
              << "\n";
}

}  // namespace

Dataset Dataset::open(const std::string& spec, const tokenizer::Tokenizer& tok, DataOptions options) {
  validate(options);
  Dataset ds;
  Impl& d = *ds.impl_;
  auto eos = options.eos_id ? options.eos_id : tok.eos_id();
  if (!eos) fail("the tokenizer has no EOS token (set eos_token in tokenizer_config.json, or give an EOS id)");
  d.eos = *eos;
  d.pad = options.pad_id.value_or(tok.pad_id().value_or(d.eos));
  d.sources = parse_data_spec(spec);
  if (options.cache_dir.empty()) options.cache_dir = default_cache_dir();
  if (options.tokenizer_key.empty()) options.tokenizer_key = tokenizer_fingerprint(tok, options.chat_template.get());
  d.options = options;

  TokenizeSettings settings;
  settings.records = options.records;
  settings.assistant_only = options.assistant_only;
  settings.add_bos = options.add_bos;
  settings.tokenizer_key = options.tokenizer_key;

  std::map<std::string, uint32_t> entry_ids;
  std::set<std::string> domain_names;
  std::vector<bool> cached(d.sources.size());
  for (size_t s = 0; s < d.sources.size(); ++s) {
    const SourceSpec& src = d.sources[s];
    auto [it, inserted] = entry_ids.emplace(src.entry, static_cast<uint32_t>(d.entries.size()));
    if (inserted) {
      d.entries.push_back(src.entry);
      d.entry_weight.push_back(src.weight);
    }
    d.source_entry.push_back(it->second);
    bool built = false;
    d.files.push_back(load_or_build_token_file(src, tok, options.chat_template.get(), settings, options.cache_dir, &built));
    cached[s] = !built;
    for (const auto& name : d.files.back()->domains()) domain_names.insert(name);
  }
  d.domains.assign(domain_names.begin(), domain_names.end());
  auto domain_id = [&](const std::string& name) {
    return static_cast<uint32_t>(std::lower_bound(d.domains.begin(), d.domains.end(), name) - d.domains.begin());
  };

  DataReport& r = d.report;
  r.block_size = options.block_size;
  r.entries = d.entries;
  for (const auto& name : d.domains) r.domains.push_back(DomainReport{name});
  for (size_t s = 0; s < d.sources.size(); ++s) {
    const TokenFile& file = *d.files[s];
    std::vector<uint32_t> map;
    for (const auto& name : file.domains()) map.push_back(domain_id(name));
    d.domain_map.push_back(map);
    // Group documents by domain, in file order.
    std::map<uint32_t, std::vector<uint32_t>> by_domain;
    for (uint32_t i = 0; i < file.num_docs(); ++i) by_domain[map[file.doc(i).domain]].push_back(i);
    SourceReport sr;
    sr.path = d.sources[s].path.string();
    sr.entry = d.sources[s].entry;
    sr.weight = d.sources[s].weight;
    sr.cached = cached[s];
    sr.records = file.records();
    sr.bad_records = file.bad_records().count;
    sr.documents = file.num_docs();
    for (auto& [domain, docs] : by_domain) {
      DocGroup g;
      g.source = static_cast<uint32_t>(s);
      g.domain = domain;
      std::vector<bool> is_val = choose_validation(docs.size(), options.validation_fraction, options.seed,
                                                   d.sources[s].path.filename().string(), d.domains[domain]);
      DomainReport& dr = r.domains[domain];
      for (size_t k = 0; k < docs.size(); ++k) {
        size_t split = is_val[k] ? 1 : 0;
        g.docs[split].push_back(docs[k]);
        TokenFile::Doc doc = file.doc(docs[k]);
        uint64_t tokens = uint64_t{doc.length} + 1;
        uint64_t targets = tokens;
        if (doc.mask) targets = static_cast<uint64_t>(std::count(doc.mask, doc.mask + doc.length, uint8_t{1}));
        sr.tokens += tokens;
        (split ? dr.validation_docs : dr.train_docs) += 1;
        (split ? dr.validation_tokens : dr.train_tokens) += tokens;
        (split ? dr.validation_targets : dr.train_targets) += targets;
      }
      sr.train_docs += g.docs[0].size();
      sr.validation_docs += g.docs[1].size();
      if (options.shuffle_documents)
        // Keyed by the file's name and place in the spec, not its absolute path: the same data and
        // seed give the same order in any checkout or directory.
        seeded_shuffle(g.docs[0], Hasher(options.seed ^ 0x5348554646ull)
                                      .field(d.sources[s].path.filename().string())
                                      .update_u64(s)
                                      .field(d.domains[domain])
                                      .digest());
      d.groups.push_back(std::move(g));
    }
    const BadRecordLog& bad = file.bad_records();
    r.bad_records.count += bad.count;
    for (const auto& b : bad.examples)
      if (r.bad_records.examples.size() < options.records.max_bad_examples) r.bad_records.examples.push_back(b);
    r.sources.push_back(std::move(sr));
  }
  check_bad_records(spec, r, options);
  d.pack();
  for (size_t split = 0; split < 2; ++split)
    for (const BlockRef& ref : d.blocks[split]) {
      DomainReport& dr = r.domains[d.groups[ref.group].domain];
      (split ? dr.validation_blocks : dr.train_blocks) += 1;
    }
  r.train_blocks = d.blocks[0].size();
  r.validation_blocks = d.blocks[1].size();
  if (r.train_blocks == 0) fail("--data '", spec, "' yields no training blocks (no documents after bad records?)");
  // Effective share of each entry in an epoch (what epoch_order draws).
  std::vector<size_t> per_entry(d.entries.size(), 0);
  for (const BlockRef& ref : d.blocks[0]) ++per_entry[d.source_entry[d.groups[ref.group].source]];
  bool weighted = !d.entry_weight.empty() && d.entry_weight[0] > 0;
  double total_weight = 0;
  for (size_t e = 0; e < d.entries.size(); ++e) total_weight += per_entry[e] ? d.entry_weight[e] : 0.0;
  for (size_t e = 0; e < d.entries.size(); ++e)
    r.entry_share.push_back(weighted ? (per_entry[e] ? d.entry_weight[e] / total_weight : 0.0)
                                     : static_cast<double>(per_entry[e]) / static_cast<double>(r.train_blocks));
  return ds;
}

Dataset Dataset::open(const std::string& spec, const fs::path& tokenizer_dir, DataOptions options) {
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(tokenizer_dir);
  fs::path dir = fs::is_directory(tokenizer_dir) ? tokenizer_dir : tokenizer_dir.parent_path();
  if (!options.chat_template) {
    bool has_template = fs::is_regular_file(dir / "chat_template.jinja");
    fs::path config = dir / "tokenizer_config.json";
    if (!has_template && fs::is_regular_file(config)) {
      std::ifstream in(config);
      auto j = nlohmann::json::parse(in, nullptr, false);
      has_template = !j.is_discarded() && j.is_object() && j.contains("chat_template") && !j["chat_template"].is_null();
    }
    if (has_template)
      options.chat_template = std::make_shared<const chat::ChatTemplate>(chat::ChatTemplate::from_tokenizer_dir(dir.string()));
  }
  if (options.tokenizer_key.empty()) options.tokenizer_key = tokenizer_dir_key(dir);
  return open(spec, tok, std::move(options));
}

std::string tokenizer_dir_key(const fs::path& dir) {
  Hasher h(0x746f6b646972ull);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}) {
    std::error_code ec;
    h.field(name);
    h.update_u64(fs::is_regular_file(dir / name, ec) ? hash_file(dir / name) : 0);
  }
  return hex64(h.digest());
}

int64_t Dataset::block_size() const { return impl_->options.block_size; }
size_t Dataset::num_blocks(Split split) const { return impl_->refs(split).size(); }
const std::vector<std::string>& Dataset::domains() const { return impl_->domains; }
const std::vector<std::string>& Dataset::entries() const { return impl_->entries; }
int32_t Dataset::eos_id() const { return impl_->eos; }
int32_t Dataset::pad_id() const { return impl_->pad; }
const DataReport& Dataset::report() const { return impl_->report; }

int32_t Dataset::block_domain(Split split, size_t index) const {
  const auto& refs = impl_->refs(split);
  if (index >= refs.size()) fail("block ", index, " of the ", to_string(split), " split is out of range (", refs.size(), " blocks)");
  return static_cast<int32_t>(impl_->groups[refs[index].group].domain);
}

int32_t Dataset::fill_block(Split split, size_t index, int32_t* ids, uint8_t* loss_mask) const {
  impl_->fill(split, index, ids, loss_mask);
  return block_domain(split, index);
}

Block Dataset::block(Split split, size_t index) const {
  Block b;
  size_t B = static_cast<size_t>(impl_->options.block_size);
  b.ids.resize(B);
  b.loss_mask.resize(B);
  b.num_real = static_cast<int32_t>(impl_->fill(split, index, b.ids.data(), b.loss_mask.data()));
  const DocGroup& g = impl_->groups[impl_->refs(split)[index].group];
  b.domain = static_cast<int32_t>(g.domain);
  b.entry = static_cast<int32_t>(impl_->source_entry[g.source]);
  return b;
}

}  // namespace moeforge::data
