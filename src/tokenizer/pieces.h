// The pieces a text is cut into between normalization and the model, plus the per-encode scratch
// (arena for rewritten pieces, regex state) so the pipeline allocates per call, not per piece.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace moeforge::tokenizer {

struct Piece {
  std::string_view text;
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace "first")
};

// Bump allocator: views it hands out stay valid until reset() or destruction.
class Arena {
 public:
  std::string_view store(std::string_view s) {
    if (s.empty()) return {};
    if (chunks_.empty() || used_ + s.size() > capacity_) {
      // Chunks start small (most encodes are short) and double, so big texts need few of them.
      next_chunk_ = std::min<size_t>(next_chunk_ * 2, 1 << 20);
      capacity_ = std::max(s.size(), next_chunk_);
      chunks_.push_back(std::make_unique<char[]>(capacity_));
      used_ = 0;
    }
    char* p = chunks_.back().get() + used_;
    std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return {p, s.size()};
  }

 private:
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_ = 0;
  size_t capacity_ = 0;
  size_t next_chunk_ = 256;
};

struct EncodeScratch {
  Arena arena;
  RegexScratch regex;
  std::string text;  // a reusable buffer for rewriting one piece
};

}  // namespace moeforge::tokenizer
