// The "compact" token codec of teacher caches (format version 2; docs/TRAINING.md "Teacher caches").
// Per token, one bit stream (LSB first):
//   5 bits  k_id; the K ids in ascending order as exp-Golomb(k_id) codes of their gaps
//           (first id, then id[i] - id[i-1] - 1): ~log2(vocab / K) + 2 bits per id instead of ceil(log2 vocab)
//   ceil(log2 K) bits: which of them is the most likely (quantised probabilities may tie)
//   3 bits  k_p; per id (same order) q = round(255 sqrt(p)) as an exp-Golomb(k_p) code
//   16 bits the tail log(1 - sum p_K) in bf16
// k_id and k_p are chosen per token for the fewest bits. A q decodes as the mean of p over its bin,
// (q^2 + 1/12) / 255^2, rescaled so the K probabilities sum to 1 - tail (the tail mass is the stored
// one). Quantising sqrt(p) uniformly makes every id's error weigh the same in the KL: per id
// p log(p / p') - p + p' <= ~0.5 / 255^2 whatever p, so KL(P || decoded) <= K / (2 * 255^2) =
// 7.7e-6 K nats (4.9e-4 at K = 64); with rounding errors spread evenly it is ~K / (6 * 255^2) =
// 2.6e-6 K (1.6e-4 at K = 64). The budget is 1e-3.
// Torch-free, so it can be tested and fuzzed without libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moeforge::train {

class BitWriter {
 public:
  void put(uint64_t value, int bits);  // the low `bits` bits of value (bits <= 57)
  void put_exp_golomb(uint64_t value, int k);
  void align();                        // pad with zeros to a whole byte
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t acc_ = 0;
  int used_ = 0;
};

class BitReader {
 public:
  // Reads [data, data + size); running past the end or a malformed code throws naming `where`.
  BitReader(const uint8_t* data, uint64_t size, std::string where) : p_(data), size_(size), where_(std::move(where)) {}
  uint64_t get(int bits);
  uint64_t get_exp_golomb(int k);
  [[noreturn]] void damaged(const std::string& what) const;

 private:
  const uint8_t* p_;
  uint64_t size_, pos_ = 0;  // in bits
  std::string where_;
};

// Bits of exp-Golomb(k) for `value`.
int exp_golomb_bits(uint64_t value, int k);

// One token: ids [K] (any order, distinct, < 2^id_bits), their log-probabilities [K] and the tail.
void encode_compact_token(const int64_t* ids, const float* logp, float tail_logp, int64_t K, int id_bits, BitWriter& out);
// Back: the most likely id first, then the others ascending; log-probabilities rescaled so the K
// probabilities sum to 1 - exp(tail).
void decode_compact_token(BitReader& in, int64_t K, int64_t vocab, int64_t* ids, float* logp, float* tail_logp);

}  // namespace moeforge::train
