// Checks a checkpoint store against the tensors a spec expects (llama.cpp's loader habits):
// "missing tensor 'X'", "tensor 'X' has wrong shape; expected [..], got [..]", wrong dtypes;
// tensors nobody expects become warnings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/model_spec.h"

namespace moeforge {

class CheckpointStore;

struct StoreValidation {
  size_t num_expected = 0;           // tensors the spec implies
  size_t num_present = 0;            // tensors in the store
  std::vector<std::string> unused;   // in the store, not expected (sorted)
  std::vector<std::string> warnings; // one line each
};

// Throws moeforge::Error with the first problem (and how many more there are) when a tensor is
// missing, has the wrong shape or a dtype the role does not allow. Returns warnings otherwise.
StoreValidation validate_store(const ModelSpec& spec, const CheckpointStore& store);

}  // namespace moeforge
