// Reads every byte of every tensor of a checkpoint (`moeforge info --verify`): an XXH64 checksum
// per tensor and for the whole checkpoint, and a count of NaN / Inf values in floating-point
// tensors. Shards are streamed in file order through their mappings (sequential read-ahead
// hinted), by one thread per core, so a warm-cache run goes at memory speed and a cold one at disk
// speed. Use it to check a download or a copy, or to find weights that went NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/safetensors_file.h"

namespace moeforge {

class CheckpointStore;

// XXH64 (the xxHash 64-bit algorithm, same values as `xxhsum -H1` / python `xxhash.xxh64`).
class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t size);
  // update() that also looks at every 8-byte word it hashes in whole 32-byte stripes (bytes left
  // over in the internal buffer are not looked at) and returns true when, in one of those words, a
  // `lane_bits`-wide lane (8, 16, 32 or 64) has all the bits of `lane_mask` set. `lane_mask` must
  // leave the lane's top bit clear. verify_checkpoint finds NaN/Inf in the same pass with it.
  bool update_and_find(const void* data, size_t size, uint64_t lane_mask, unsigned lane_bits);
  uint64_t digest() const;

 private:
  template <bool kFind>
  bool update_impl(const void* data, size_t size, uint64_t mask, uint64_t low, uint64_t high);

  uint64_t v_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  uint8_t buffer_[32];
  size_t buffered_ = 0;
};
uint64_t xxh64(const void* data, size_t size, uint64_t seed = 0);

// Non-finite values of a tensor of `dtype` (always zero for integer and bool dtypes).
// F8_E4M3 and F8_E8M0 have NaN but no Inf encodings.
struct NonFinite {
  uint64_t nan = 0;
  uint64_t inf = 0;
};
NonFinite count_non_finite(DType dtype, ByteView bytes);

struct TensorDigest {
  std::string name;
  DType dtype = DType::F32;
  uint64_t bytes = 0;
  uint64_t xxh64 = 0;  // of the tensor's raw bytes, seed 0
  NonFinite non_finite;
};

struct CheckpointDigest {
  uint64_t tensors = 0;
  uint64_t bytes = 0;     // tensor bytes read
  uint64_t checksum = 0;  // XXH64 over "name\0" + little-endian tensor xxh64, tensors in name order
  NonFinite non_finite;   // summed over every tensor
  double seconds = 0;     // wall time of the read
  std::vector<TensorDigest> per_tensor;  // in name order
  // Names of the tensors holding NaN or Inf, in name order.
  std::vector<std::string> non_finite_tensors() const;
};

// Reads every tensor of `store` (shard by shard, each in file order) on `threads` threads (0: one
// per core, at most 8), a tensor per thread at a time. Shard defects (bad header, out-of-bounds
// offsets, a file shorter than its header says) throw moeforge::Error as on open.
CheckpointDigest verify_checkpoint(const CheckpointStore& store, unsigned threads = 0);

}  // namespace moeforge
