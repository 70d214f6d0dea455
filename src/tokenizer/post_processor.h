// Post-processors from tokenizer.json ("post_processor"): TemplateProcessing, RobertaProcessing,
// BertProcessing, ByteLevel (ids unchanged) and Sequence. They add BOS/EOS-style special tokens
// around a single sequence when add_special_tokens is on.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tokenizer/json_fields.h"

namespace moeforge::tokenizer {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
  // Ids added before / after the sequence (to report BOS/EOS).
  virtual void special_ids(std::vector<int32_t>& before, std::vector<int32_t>& after) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const Json& spec, const JsonPath& at);

}  // namespace moeforge::tokenizer
