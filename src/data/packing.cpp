// Packing: documents of each (file, domain) group, EOS after each, cut into fixed-length blocks
// (Concat) or one document per run of blocks (PerDocument); and filling a block from the cache.
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "data/dataset_impl.h"

namespace moeforge::data {

void Dataset::Impl::pack() {
  const size_t B = static_cast<size_t>(options.block_size);
  for (size_t split = 0; split < 2; ++split) {
    std::vector<BlockRef>& out = blocks[split];
    out.clear();
    for (uint32_t g = 0; g < groups.size(); ++g) {
      const std::vector<uint32_t>& docs = groups[g].docs[split];
      const TokenFile& file = *files[groups[g].source];
      if (options.packing == PackMode::PerDocument) {
        for (uint32_t i = 0; i < docs.size(); ++i) {
          uint64_t with_eos = uint64_t{file.doc(docs[i]).length} + 1;
          for (uint64_t o = 0; o < with_eos; o += B) out.push_back({g, i, static_cast<uint32_t>(o)});
        }
        continue;
      }
      uint32_t i = 0;
      uint64_t o = 0;
      while (i < docs.size()) {
        out.push_back({g, i, static_cast<uint32_t>(o)});
        uint64_t need = B;
        while (need > 0 && i < docs.size()) {
          uint64_t avail = uint64_t{file.doc(docs[i]).length} + 1 - o;
          if (avail > need) {
            o += need;
            need = 0;
          } else {
            need -= avail;
            ++i;
            o = 0;
          }
        }
      }
    }
  }
}

size_t Dataset::Impl::fill(Split split, size_t index, int32_t* ids, uint8_t* mask) const {
  const std::vector<BlockRef>& list = refs(split);
  if (index >= list.size())
    fail("block ", index, " of the ", to_string(split), " split is out of range (", list.size(), " blocks)");
  const BlockRef& ref = list[index];
  const DocGroup& group = groups[ref.group];
  const std::vector<uint32_t>& docs = group.docs[static_cast<size_t>(split)];
  const TokenFile& file = *files[group.source];
  const size_t B = static_cast<size_t>(options.block_size);
  size_t t = 0;
  size_t i = ref.doc_pos;
  uint64_t o = ref.offset;
  while (t < B && i < docs.size()) {
    TokenFile::Doc d = file.doc(docs[i]);
    if (o < d.length) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(B - t, d.length - o));
      for (size_t k = 0; k < n; ++k) ids[t + k] = static_cast<int32_t>(d.ids[o + k]);
      if (d.mask) std::memcpy(mask + t, d.mask + o, n);
      else std::memset(mask + t, 1, n);
      t += n;
      o += n;
    }
    if (t < B && o == d.length) {
      ids[t] = eos;
      mask[t] = d.mask ? 0 : 1;
      ++t;
      ++i;
      o = 0;
      if (options.packing == PackMode::PerDocument) break;
    }
  }
  for (size_t k = t; k < B; ++k) {
    ids[k] = pad;
    mask[k] = 0;
  }
  return t;
}

}  // namespace moeforge::data
