// The compact token codec of teacher caches (layout and error bound in teacher_cache_codec.h).
#include "train/teacher_cache_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "common/error.h"
#include "train/teacher_cache_format.h"

namespace moeforge::train {

namespace {

constexpr int kLevels = 255;         // q = round(kLevels * sqrt(p))
constexpr int kMaxIdOrder = 31;      // k_id fits 5 bits
constexpr int kMaxProbOrder = 7;     // k_p fits 3 bits
constexpr int kMaxUnary = 48;        // longer runs of ones mean a damaged stream

int floor_log2(uint64_t v) { return 63 - __builtin_clzll(v); }

// The k in [0, max_k] giving the fewest bits for all of `values`.
int best_order(const std::vector<uint64_t>& values, int max_k) {
  int best = 0;
  int64_t best_bits = std::numeric_limits<int64_t>::max();
  for (int k = 0; k <= max_k; ++k) {
    int64_t bits = 0;
    for (uint64_t v : values) bits += exp_golomb_bits(v, k);
    if (bits < best_bits) best_bits = bits, best = k;
  }
  return best;
}

}  // namespace

void BitWriter::put(uint64_t value, int bits) {
  if (bits == 0) return;
  acc_ |= (value & ((uint64_t{1} << bits) - 1)) << used_;
  used_ += bits;
  while (used_ >= 8) {
    bytes_.push_back(static_cast<uint8_t>(acc_ & 0xFF));
    acc_ >>= 8;
    used_ -= 8;
  }
}

void BitWriter::put_exp_golomb(uint64_t value, int k) {
  const uint64_t w = value + (uint64_t{1} << k);
  const int n = floor_log2(w);
  for (int i = 0; i < n - k; ++i) put(1, 1);  // unary: n - k ones and a zero
  put(0, 1);
  put(w, n);  // w without its leading one
}

void BitWriter::align() {
  if (used_ > 0) put(0, 8 - used_);
}

uint64_t BitReader::get(int bits) {
  if (pos_ + static_cast<uint64_t>(bits) > size_ * 8) damaged("runs past its block");
  uint64_t v = 0;
  for (int b = 0; b < bits;) {
    const uint64_t byte = pos_ >> 3;
    const int off = static_cast<int>(pos_ & 7);
    const int take = std::min(8 - off, bits - b);
    v |= static_cast<uint64_t>((p_[byte] >> off) & ((1u << take) - 1)) << b;
    b += take;
    pos_ += static_cast<uint64_t>(take);
  }
  return v;
}

uint64_t BitReader::get_exp_golomb(int k) {
  int ones = 0;
  while (get(1) == 1)
    if (++ones > kMaxUnary) damaged("has a malformed code");
  const int n = ones + k;
  return ((uint64_t{1} << n) | get(n)) - (uint64_t{1} << k);
}

void BitReader::damaged(const std::string& what) const { fail(where_, ": damaged teacher cache: a token record ", what); }

int exp_golomb_bits(uint64_t value, int k) { return 2 * floor_log2(value + (uint64_t{1} << k)) - k + 1; }

void encode_compact_token(const int64_t* ids, const float* logp, float tail_logp, int64_t K, int id_bits, BitWriter& out) {
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ids[a] < ids[b]; });
  std::vector<uint64_t> gaps(order.size()), q(order.size());
  int64_t prev = -1;
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t id = ids[order[i]];
    if (id <= prev) fail("teacher cache: token ids must be distinct (", id, " twice)");
    gaps[i] = static_cast<uint64_t>(id - prev - 1);
    prev = id;
    const double p = std::min(1.0, std::exp(static_cast<double>(logp[order[i]])));
    q[i] = static_cast<uint64_t>(std::lround(kLevels * std::sqrt(p)));
  }
  const int k_id = best_order(gaps, std::min(kMaxIdOrder, id_bits));
  const int k_p = best_order(q, kMaxProbOrder);
  out.put(static_cast<uint64_t>(k_id), 5);
  for (uint64_t g : gaps) out.put_exp_golomb(g, k_id);
  // Where the most likely id is among them: ties of q must not hide the teacher's argmax.
  int64_t top = 0;
  for (int64_t i = 1; i < K; ++i)
    if (logp[order[i]] > logp[order[top]]) top = i;
  out.put(static_cast<uint64_t>(top), bits_for(K));
  out.put(static_cast<uint64_t>(k_p), 3);
  for (uint64_t v : q) out.put_exp_golomb(v, k_p);
  out.put(float_to_bf16(tail_logp), 16);
}

void decode_compact_token(BitReader& in, int64_t K, int64_t vocab, int64_t* ids, float* logp, float* tail_logp) {
  const int k_id = static_cast<int>(in.get(5));
  int64_t prev = -1;
  for (int64_t i = 0; i < K; ++i) {
    const uint64_t gap = in.get_exp_golomb(k_id);
    if (gap >= static_cast<uint64_t>(vocab)) in.damaged("has an id outside the vocabulary");
    prev += static_cast<int64_t>(gap) + 1;
    if (prev >= vocab) in.damaged("has an id outside the vocabulary");
    ids[i] = prev;
  }
  const auto top = static_cast<int64_t>(in.get(bits_for(K)));
  if (top >= K) in.damaged("names a most likely id beyond its K");
  const int k_p = static_cast<int>(in.get(3));
  double sum = 0;
  std::vector<double> p(static_cast<size_t>(K));
  for (int64_t i = 0; i < K; ++i) {
    const uint64_t q = in.get_exp_golomb(k_p);
    if (q > static_cast<uint64_t>(kLevels)) in.damaged("has a probability above 1");
    // The mean of p = u^2 over u in [q - 1/2, q + 1/2] / 255 (for q = 0, over [0, 1/2] / 255).
    p[static_cast<size_t>(i)] = (static_cast<double>(q) * static_cast<double>(q) + 1.0 / 12.0) / (kLevels * kLevels);
    sum += p[static_cast<size_t>(i)];
  }
  *tail_logp = bf16_to_float(static_cast<uint16_t>(in.get(16)));
  const double top_mass = std::isinf(*tail_logp) ? 1.0 : std::max(1e-30, -std::expm1(static_cast<double>(*tail_logp)));
  for (int64_t i = 0; i < K; ++i) logp[i] = static_cast<float>(std::log(p[static_cast<size_t>(i)] * top_mass / sum));
  // The most likely id first, so a first-occurrence argmax finds it.
  std::rotate(ids, ids + top, ids + top + 1);
  std::rotate(logp, logp + top, logp + top + 1);
}

}  // namespace moeforge::train
