// Internal: the state behind Dataset, shared by dataset.cpp (opening, report), packing.cpp
// (block layout and materialisation) and epoch_order.cpp. Not part of the public API.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/token_file.h"

namespace moeforge::data {

struct BlockRef {
  uint32_t group = 0;    // index into Dataset::Impl::groups
  uint32_t doc_pos = 0;  // position in the group's document list of the split
  uint32_t offset = 0;   // token offset in that document (== length: the block starts at its EOS)
};

struct DocGroup {
  uint32_t source = 0;                      // index into sources/files
  uint32_t domain = 0;                      // global domain id
  std::array<std::vector<uint32_t>, 2> docs;  // [Train, Validation]: document indices in the token file
};

struct Dataset::Impl {
  DataOptions options;
  int32_t eos = 0, pad = 0;
  std::vector<SourceSpec> sources;
  std::vector<std::shared_ptr<const TokenFile>> files;
  std::vector<uint32_t> source_entry;                    // source -> entry
  std::vector<std::vector<uint32_t>> domain_map;         // source -> (local domain -> global)
  std::vector<std::string> domains, entries;
  std::vector<double> entry_weight;                      // < 0: natural
  std::vector<DocGroup> groups;
  std::array<std::vector<BlockRef>, 2> blocks;
  DataReport report;

  const std::vector<BlockRef>& refs(Split s) const { return blocks[static_cast<size_t>(s)]; }
  // Lays out blocks of both splits from `groups` (packing.cpp).
  void pack();
  // Writes block_size ids and mask bytes; returns the tokens before padding (packing.cpp).
  size_t fill(Split split, size_t index, int32_t* ids, uint8_t* mask) const;
};

}  // namespace moeforge::data
