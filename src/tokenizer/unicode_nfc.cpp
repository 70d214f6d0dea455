// NFC/NFD: canonical decomposition, canonical ordering by combining class, then canonical
// composition (UAX #15), with Hangul syllables handled arithmetically.
#include "tokenizer/unicode_nfc.h"

#include <algorithm>
#include <vector>

#include "tokenizer/unicode_nfc_data.h"
#include "tokenizer/utf8.h"

namespace moeforge::tokenizer {
namespace {
using namespace nfc_data;

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint16_t flags(char32_t cp) {
  if (cp >= 0x110000) return 0;
  return kBlocks[kBlockIndex[cp >> 7]][cp & 127];
}
uint8_t combining_class(char32_t cp) { return static_cast<uint8_t>(flags(cp) & 0xFF); }

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (flags(cp) & (1u << 8)) {
    const Decomposition* end = kDecompositions + kDecompositionCount;
    auto it = std::lower_bound(kDecompositions, end, cp,
                               [](const Decomposition& d, char32_t c) { return d.code_point < c; });
    if (it != end && it->code_point == cp) {
      out.insert(out.end(), kDecompPool + it->offset, kDecompPool + it->offset + it->length);
      return;
    }
  }
  out.push_back(cp);
}

// Returns the primary composite of (a, b), or 0 when there is none.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  if (!(flags(b) & (1u << 9))) return 0;
  uint64_t key = (static_cast<uint64_t>(a) << 21) | b;
  const Composition* end = kCompositions + kCompositionCount;
  auto it = std::lower_bound(kCompositions, end, key,
                             [](const Composition& c, uint64_t k) { return c.pair < k; });
  return it != end && it->pair == key ? it->composite : 0;
}

std::vector<char32_t> decomposed_and_ordered(std::string_view text) {
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  for (size_t i = 0; i < text.size();) decompose(next_code_point(text, i), cps);
  // Canonical ordering: stable-sort each run of non-starters by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t x, char32_t y) { return combining_class(x) < combining_class(y); });
    i = j;
  }
  return cps;
}
}  // namespace

bool nfc_quick_check(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b < 0xCC) {  // every code point below U+0300 is left alone by NFC
      i += utf8_length(b);
      continue;
    }
    if (flags(next_code_point(text, i)) != 0) return false;
  }
  return true;
}

void append_nfd(std::string& out, std::string_view text) {
  for (char32_t cp : decomposed_and_ordered(text)) append_utf8(out, cp);
}

void append_nfc(std::string& out, std::string_view text) {
  std::vector<char32_t> cps = decomposed_and_ordered(text);
  // Canonical composition: a character composes with the last starter unless something between
  // them is a starter or has a combining class >= its own (after reordering, the last one written
  // has the largest class).
  size_t starter = SIZE_MAX;
  int last_class = 0;
  size_t write = 0;
  for (size_t read = 0; read < cps.size(); ++read) {
    char32_t cp = cps[read];
    int cls = combining_class(cp);
    if (starter != SIZE_MAX) {
      bool adjacent = write == starter + 1;
      bool blocked = !adjacent && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        char32_t composite = compose_pair(cps[starter], cp);
        if (composite != 0) {
          cps[starter] = composite;
          continue;
        }
      }
    }
    if (cls == 0) starter = write;
    last_class = cls;
    cps[write++] = cp;
  }
  cps.resize(write);
  for (char32_t cp : cps) append_utf8(out, cp);
}

}  // namespace moeforge::tokenizer
