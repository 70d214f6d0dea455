// Byte-level BPE training: pre-token counting and the greedy merge loop with incremental pair
// counts and a lazily-invalidated max-heap of pair frequencies.
#include "init/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <set>
#include <unordered_map>

#include "common/error.h"

namespace moeforge::init {
namespace {

struct Word {
  std::vector<uint32_t> symbols;  // 0..255 bytes, 256+ merged symbols
  uint64_t count = 0;
};

uint64_t key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

struct HeapItem {
  uint64_t count;
  uint64_t pair;
  // Max-heap on count; ties: the smaller pair key (earlier symbols) first, so runs are reproducible.
  bool operator<(const HeapItem& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

}  // namespace

BpeModelData train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options) {
  BpeModelData model;
  // Special tokens first, deduplicated, in the given order.
  std::set<std::string> seen;
  for (const auto& s : options.special_tokens)
    if (!s.empty() && seen.insert(s).second) model.special_tokens.push_back(s);
  for (const std::string* named : {&options.bos_token, &options.eos_token, &options.pad_token})
    if (!named->empty() && !seen.count(*named))
      fail("tokenizer train: '", *named, "' is used as bos/eos/pad but is not among --special-tokens");
  const size_t base = model.special_tokens.size() + 256;
  if (options.vocab_size < base)
    fail("tokenizer train: --vocab ", options.vocab_size, " is smaller than the ", base,
         " special and byte tokens it must hold");

  // Pre-token frequencies.
  std::unordered_map<std::string, uint64_t> counts;
  for (const std::string& text : texts) {
    model.bytes_seen += text.size();
    for (std::string& piece : gpt2_split(text)) {
      ++counts[std::move(piece)];
      ++model.pre_tokens;
    }
  }
  std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());  // deterministic word order (hash maps are not)
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [piece, count] : sorted) {
    Word w;
    w.count = count;
    for (unsigned char c : piece) w.symbols.push_back(c);
    words.push_back(std::move(w));
  }
  model.unique_pre_tokens = words.size();

  // Symbol strings (byte-level alphabet): bytes, then merges.
  std::vector<std::string> symbol_text(256);
  for (int b = 0; b < 256; ++b) symbol_text[static_cast<size_t>(b)] = byte_level_encode(std::string(1, static_cast<char>(b)));

  std::unordered_map<std::string, uint32_t> symbol_id;
  for (uint32_t b = 0; b < 256; ++b) symbol_id[symbol_text[b]] = b;

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;
  for (uint32_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] += static_cast<int64_t>(words[w].count);
      auto& list = pair_words[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  std::priority_queue<HeapItem> heap;
  for (const auto& [k, c] : pair_count) heap.push({static_cast<uint64_t>(c), k});

  std::vector<uint32_t> stamp(words.size(), UINT32_MAX);  // last merge that visited each word
  const size_t target_symbols = options.vocab_size - model.special_tokens.size();
  std::vector<uint32_t> rebuilt;
  while (symbol_text.size() < target_symbols && !heap.empty()) {
    HeapItem top = heap.top();
    heap.pop();
    auto found = pair_count.find(top.pair);
    int64_t current = found == pair_count.end() ? 0 : found->second;
    if (current <= 0) continue;
    if (static_cast<uint64_t>(current) != top.count) {
      heap.push({static_cast<uint64_t>(current), top.pair});
      continue;
    }
    if (static_cast<uint64_t>(current) < options.min_frequency) break;
    const uint32_t a = static_cast<uint32_t>(top.pair >> 32), b = static_cast<uint32_t>(top.pair & 0xFFFFFFFFu);
    // Two different pairs can spell the same string ("ab"+"c", "a"+"bc"): one vocab entry, two merges.
    std::string text = symbol_text[a] + symbol_text[b];
    auto [slot, fresh] = symbol_id.emplace(text, static_cast<uint32_t>(symbol_text.size()));
    const uint32_t merged = slot->second;
    if (fresh) symbol_text.push_back(text);
    const uint32_t merge_index = static_cast<uint32_t>(model.merges.size());
    model.merges.push_back({symbol_text[a], symbol_text[b]});

    std::vector<uint64_t> touched;
    std::vector<uint32_t> affected = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    for (uint32_t w : affected) {
      if (stamp[w] == merge_index) continue;
      stamp[w] = merge_index;
      Word& word = words[w];
      auto& s = word.symbols;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;  // stale entry: an earlier merge already consumed the pair here
      const int64_t c = static_cast<int64_t>(word.count);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t k = key(s[i], s[i + 1]);
        pair_count[k] -= c;
        touched.push_back(k);
      }
      rebuilt.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          rebuilt.push_back(merged);
          ++i;
        } else {
          rebuilt.push_back(s[i]);
        }
      }
      s = rebuilt;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t k = key(s[i], s[i + 1]);
        pair_count[k] += c;
        touched.push_back(k);
        if (s[i] == merged || s[i + 1] == merged) {
          auto& list = pair_words[k];
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
    }
    pair_count.erase(top.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      auto it = pair_count.find(k);
      if (it == pair_count.end()) continue;
      if (it->second <= 0) pair_count.erase(it);
      else heap.push({static_cast<uint64_t>(it->second), k});
    }
  }

  model.vocab = model.special_tokens;
  for (const std::string& s : symbol_text) model.vocab.push_back(s);
  return model;
}

}  // namespace moeforge::init
