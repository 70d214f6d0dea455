// BPE model (see bpe_model.h). Merging always applies the lowest-ranked adjacent pair, leftmost
// first, which is what HF's priority-queue merge computes.
#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {
constexpr size_t kCharTableSize = 0x3000;
constexpr size_t kMaxCachedWordBytes = 128;
constexpr size_t kMaxCacheEntries = 1 << 18;
constexpr size_t kMaxVocabIdGap = 1 << 20;  // ids may leave holes, but not absurd ones
}  // namespace

BpeModel::BpeModel(const Json& spec, const JsonPath& at) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  if (has_value(spec, "dropout")) {
    const Json& d = spec.at("dropout");
    if (!d.is_number()) at.child("dropout").fail("expected a number");
    if (d.get<double>() > 0) at.child("dropout").fail("BPE dropout is not supported (it is random)");
  }
  if (has_value(spec, "unk_token")) unk_token_ = get_string(spec, "unk_token", at);
  continuing_subword_prefix_ = get_string_or(spec, "continuing_subword_prefix", "", at);
  end_of_word_suffix_ = get_string_or(spec, "end_of_word_suffix", "", at);
  fuse_unk_ = get_bool_or(spec, "fuse_unk", false, at);
  byte_fallback_ = get_bool_or(spec, "byte_fallback", false, at);
  ignore_merges_ = get_bool_or(spec, "ignore_merges", false, at);

  // Vocab: token -> id. Ids may have holes; id -> token keeps the first token seen for an id.
  const Json& vocab = require(spec, "vocab", at);
  JsonPath vocab_at = at.child("vocab");
  if (!vocab.is_object()) vocab_at.fail("expected an object of token -> id");
  if (vocab.empty()) vocab_at.fail("the vocab is empty");
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int32_t id = as_token_id(it.value(), vocab_at.child(it.key()));
    max_id = std::max<int64_t>(max_id, id);
  }
  if (static_cast<size_t>(max_id) >= vocab.size() + kMaxVocabIdGap)
    vocab_at.fail("ids are too sparse (max id ", max_id, " for ", vocab.size(), " tokens)");
  id_to_token_.resize(max_id + 1);
  has_id_.assign(max_id + 1, false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int32_t id = it.value().get<int32_t>();
    vocab_.insert(it.key(), id);
    if (!has_id_[id]) {
      has_id_[id] = true;
      id_to_token_[id] = it.key();
    }
  }

  // Single characters get a direct table when no prefix/suffix decorates them.
  if (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty()) {
    char_ids_.assign(kCharTableSize, -1);
    vocab_.for_each([&](std::string_view token, int32_t id) {
      size_t i = 0;
      char32_t cp = next_code_point(token, i);
      if (i == token.size() && cp < kCharTableSize) char_ids_[cp] = id;
    });
  }
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (const int32_t* id = vocab_.find(name)) byte_ids_[b] = *id;
    }
  }
  if (unk_token_ && !vocab_.find(*unk_token_))
    at.child("unk_token").fail("unk token '", *unk_token_, "' is not in the vocab");

  // Merges: "a b" strings or ["a", "b"] pairs; rank = position. Later duplicates win, as in HF.
  const Json& merges = get_array(spec, "merges", at);
  in_merge_.assign(id_to_token_.size(), 0);
  JsonPath merges_at = at.child("merges");
  size_t prefix_len = continuing_subword_prefix_.size();
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& m = merges[rank];
    std::string a, b;
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        merges_at.index(rank).fail("expected \"left right\" with exactly one space, got '", line, "'");
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      merges_at.index(rank).fail("expected a \"left right\" string or a [left, right] pair");
    }
    const int32_t* a_id = vocab_.find(a);
    if (!a_id) merges_at.index(rank).fail("merge names unknown token '", a, "'");
    const int32_t* b_id = vocab_.find(b);
    if (!b_id) merges_at.index(rank).fail("merge names unknown token '", b, "'");
    if (b.size() < prefix_len)
      merges_at.index(rank).fail("token '", b, "' is shorter than continuing_subword_prefix");
    merged = a;
    merged.append(b, prefix_len, std::string::npos);
    const int32_t* new_id = vocab_.find(merged);
    if (!new_id) merges_at.index(rank).fail("merged token '", merged, "' is not in the vocab");
    merges_.put(pair_key(*a_id, *b_id), Merge{static_cast<int32_t>(rank), *new_id});
    in_merge_[*a_id] = in_merge_[*b_id] = 1;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  if (const int32_t* id = vocab_.find(token)) return *id;
  return std::nullopt;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t BpeModel::lookup_char(std::string_view ch) const {
  const int32_t* id = vocab_.find(ch);
  return id ? *id : -1;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  symbols.clear();
  bool decorated = !char_ids_.size();
  std::string decorated_char;
  // A pending unknown: HF keeps at most one, fused with following unknowns when fuse_unk is set.
  bool unk_pending = false;
  int32_t unk_id = -1;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    char32_t cp = next_code_point(word, i);
    std::string_view ch = word.substr(start, i - start);
    int32_t id;
    if (!decorated) {
      id = cp < kCharTableSize ? char_ids_[cp] : lookup_char(ch);
    } else {
      decorated_char.clear();
      if (start > 0) decorated_char += continuing_subword_prefix_;
      decorated_char.append(ch);
      if (i == word.size()) decorated_char += end_of_word_suffix_;
      id = lookup_char(decorated_char);
      ch = decorated_char;
    }
    if (id >= 0) {
      if (unk_pending) {
        symbols.push_back(unk_id);
        unk_pending = false;
      }
      symbols.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_ids_[b] >= 0;
      if (all) {  // note: HF emits these before a still-pending unk
        for (unsigned char b : ch) symbols.push_back(byte_ids_[b]);
        continue;
      }
    }
    if (unk_token_) {
      if (unk_pending && !fuse_unk_) symbols.push_back(unk_id);
      unk_id = *vocab_.find(*unk_token_);
      unk_pending = true;
    }
    // Without an unk token the character is dropped, as HF does.
  }
  if (unk_pending) symbols.push_back(unk_id);
}

void BpeModel::merge_small(std::vector<int32_t>& symbols) const {
  // O(n^2) scan for short words: ranks[i] is the rank of the pair (i, i+1).
  constexpr int32_t kNone = INT32_MAX;
  size_t n = symbols.size();
  int32_t ranks[64];
  int32_t new_ids[64];
  for (size_t i = 0; i + 1 < n; ++i) {
    const Merge* m = find_merge(symbols[i], symbols[i + 1]);
    ranks[i] = m ? m->rank : kNone;
    new_ids[i] = m ? m->new_id : -1;
  }
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == kNone) break;
    symbols[best] = new_ids[best];
    for (size_t i = best + 1; i + 1 < n; ++i) {
      symbols[i] = symbols[i + 1];
      if (i + 1 < n - 1) {
        ranks[i] = ranks[i + 1];
        new_ids[i] = new_ids[i + 1];
      }
    }
    --n;
    auto refresh = [&](size_t i) {
      const Merge* m = find_merge(symbols[i], symbols[i + 1]);
      ranks[i] = m ? m->rank : kNone;
      new_ids[i] = m ? m->new_id : -1;
    };
    if (best > 0) refresh(best - 1);
    if (best + 1 < n) refresh(best);
  }
  symbols.resize(n);
}

void BpeModel::merge_large(std::vector<int32_t>& symbols) const {
  // Linked list of symbols plus a min-heap of (rank, position); stale entries are skipped.
  size_t n = symbols.size();
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Entry {
    int32_t rank, pos, new_id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  auto push = [&](int32_t pos) {
    int32_t nx = next[pos];
    if (nx < 0) return;
    if (const Merge* m = find_merge(symbols[pos], symbols[nx])) queue.push({m->rank, pos, m->new_id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!queue.empty()) {
    Entry top = queue.top();
    queue.pop();
    int32_t pos = top.pos;
    if (symbols[pos] < 0 || next[pos] < 0) continue;
    int32_t right = next[pos];
    const Merge* m = find_merge(symbols[pos], symbols[right]);
    if (!m || m->new_id != top.new_id) continue;
    symbols[pos] = top.new_id;
    symbols[right] = -1;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    if (prev[pos] >= 0) push(prev[pos]);
    push(pos);
  }
  symbols.erase(std::remove(symbols.begin(), symbols.end(), -1), symbols.end());
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t* id = vocab_.find(word)) {
      out.push_back(*id);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const CacheEntry* hit = cache_.find(word)) {
      out.insert(out.end(), cache_ids_.begin() + hit->offset,
                 cache_ids_.begin() + hit->offset + hit->length);
      return;
    }
  }
  std::vector<int32_t> symbols;
  initial_symbols(word, symbols);
  if (symbols.size() <= 64) {
    merge_small(symbols);
  } else {
    // A symbol that no merge mentions never merges, so the runs between such symbols are
    // independent words; merging them one by one keeps huge inputs (e.g. Llama 2 text with no
    // pre-tokenizer, split by byte-fallback newlines) fast without changing the result.
    std::vector<int32_t> merged, run;
    merged.reserve(symbols.size());
    size_t run_start = 0;
    auto flush = [&](size_t end) {
      run.assign(symbols.begin() + run_start, symbols.begin() + end);
      if (run.size() <= 64) merge_small(run);
      else merge_large(run);
      merged.insert(merged.end(), run.begin(), run.end());
    };
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (in_merge_[symbols[i]]) continue;
      flush(i);
      merged.push_back(symbols[i]);
      run_start = i + 1;
    }
    flush(symbols.size());
    symbols.swap(merged);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) {  // bounded: start over rather than grow forever
      cache_.clear();
      cache_ids_.clear();
    }
    if (cache_.insert(word, CacheEntry{static_cast<uint32_t>(cache_ids_.size()),
                                       static_cast<uint32_t>(symbols.size())}))
      cache_ids_.insert(cache_ids_.end(), symbols.begin(), symbols.end());
  }
}

}  // namespace moeforge::tokenizer
