// Epoch orders: which blocks, in which order, one epoch of a split visits (mixture weights and
// seeded shuffling); deterministic in (dataset, seed, epoch).
#include <algorithm>
#include <cmath>
#include <map>

#include "data/dataset_impl.h"
#include "data/hash.h"
#include "data/shuffle.h"

namespace moeforge::data {

std::vector<uint32_t> Dataset::epoch_order(Split split, uint64_t epoch, uint64_t seed, bool shuffle) const {
  const Impl& d = *impl_;
  const std::vector<BlockRef>& refs = d.refs(split);
  const uint32_t n = static_cast<uint32_t>(refs.size());
  std::vector<uint32_t> order;
  bool weighted = !d.entry_weight.empty() && d.entry_weight[0] > 0;
  if (split == Split::Validation || !weighted) {
    order.resize(n);
    for (uint32_t i = 0; i < n; ++i) order[i] = i;
    if (split == Split::Train && shuffle) seeded_shuffle(order, Hasher(seed).update_u64(epoch).field("epoch").digest());
    return order;
  }
  // Blocks of each entry, in natural order.
  std::vector<std::vector<uint32_t>> by_entry(d.entries.size());
  for (uint32_t i = 0; i < n; ++i) by_entry[d.source_entry[d.groups[refs[i].group].source]].push_back(i);
  // Slots per entry: largest remainder of share * n over entries that have blocks.
  double total = 0;
  for (size_t e = 0; e < by_entry.size(); ++e) total += by_entry[e].empty() ? 0.0 : d.entry_weight[e];
  std::vector<uint64_t> quota(by_entry.size(), 0);
  std::vector<std::pair<double, size_t>> remainders;
  uint64_t given = 0;
  for (size_t e = 0; e < by_entry.size(); ++e) {
    if (by_entry[e].empty()) continue;
    double exact = d.entry_weight[e] / total * n;
    quota[e] = static_cast<uint64_t>(std::floor(exact));
    given += quota[e];
    remainders.push_back({exact - std::floor(exact), e});
  }
  std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < n && k < remainders.size(); ++k, ++given) ++quota[remainders[k].second];
  // Entry e's epoch takes positions [epoch * q, (epoch + 1) * q) of its endless stream of seeded
  // permutations (cycle c = position / size), so subsampled entries resume where they stopped.
  order.reserve(n);
  for (size_t e = 0; e < by_entry.size(); ++e) {
    const std::vector<uint32_t>& blocks = by_entry[e];
    if (blocks.empty() || quota[e] == 0) continue;
    const uint64_t size = blocks.size();
    std::map<uint64_t, std::vector<uint32_t>> cycles;
    for (uint64_t p = epoch * quota[e]; p < (epoch + 1) * quota[e]; ++p) {
      uint64_t cycle = p / size;
      auto it = cycles.find(cycle);
      if (it == cycles.end()) {
        uint64_t cycle_seed = Hasher(seed).update_u64(e).update_u64(cycle).field("cycle").digest();
        it = cycles.emplace(cycle, seeded_permutation(static_cast<uint32_t>(size), cycle_seed)).first;
      }
      order.push_back(blocks[it->second[p % size]]);
    }
  }
  if (shuffle) seeded_shuffle(order, Hasher(seed).update_u64(epoch).field("epoch").digest());
  return order;
}

}  // namespace moeforge::data
