// Declarations of the generated NFC tables (unicode_nfc_data.cpp, made by tools/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moeforge::tokenizer::nfc_data {

struct Decomposition {
  uint32_t code_point;
  uint32_t offset;  // into kDecompPool: the full canonical decomposition
  uint32_t length;
};
struct Composition {
  uint64_t pair;  // (first << 21) | second
  uint32_t composite;
};

// Per code point: bits 0-7 combining class, bit 8 has a decomposition, bit 9 may combine with the
// previous character, bit 10 not NFC on its own. Zero means NFC never touches the character.
extern const uint16_t kBlockIndex[];  // code point >> 7 -> block
extern const uint16_t kBlocks[][128];
extern const uint32_t kDecompPool[];
extern const Decomposition kDecompositions[];  // sorted by code point
extern const size_t kDecompositionCount;
extern const Composition kCompositions[];  // sorted by pair
extern const size_t kCompositionCount;

}  // namespace moeforge::tokenizer::nfc_data
