// Pre-tokenizers from tokenizer.json ("pre_tokenizer"): Split, ByteLevel, Metaspace, Digits,
// Whitespace, WhitespaceSplit, CharDelimiterSplit and Sequence. They cut normalized text into the
// words the model sees (rewriting them where HF does, e.g. ByteLevel's byte-to-char mapping).
#pragma once

#include <memory>
#include <vector>

#include "tokenizer/json_fields.h"
#include "tokenizer/pieces.h"

namespace moeforge::tokenizer {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends to `out` the pieces each piece of `in` becomes; empty pieces are dropped.
  virtual void apply(const std::vector<Piece>& in, std::vector<Piece>& out,
                     EncodeScratch& scratch) const = 0;
};

// Builds the pre-tokenizer described by `spec`; nullptr for JSON null.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& spec, const JsonPath& at);

}  // namespace moeforge::tokenizer
