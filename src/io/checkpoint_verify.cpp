#include "io/checkpoint_verify.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "io/checkpoint_store.h"

namespace moeforge {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ull;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ull;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, aarch64), like the rest of the safetensors code
}
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * kPrime2;
  acc = rotl(acc, 31);
  return acc * kPrime1;
}
inline uint64_t merge_round(uint64_t acc, uint64_t v) {
  acc ^= round64(0, v);
  return acc * kPrime1 + kPrime4;
}

// Counts values whose exponent bits are all ones (`exponent`): NaN or Inf. Blocks of a fixed element
// count summed in accumulators as wide as the element, so the compiler vectorises the inner loop at
// -O2 (a block of 128 cannot overflow even 8-bit counters).
template <typename Bits>
uint64_t count_masked_equal(const uint8_t* data, size_t n, Bits mask, Bits value) {
  constexpr size_t kBlock = 128;
  uint64_t count = 0;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    Bits block[kBlock];
    std::memcpy(block, data + i * sizeof(Bits), sizeof block);
    Bits c = 0;
    for (size_t j = 0; j < kBlock; ++j) c = static_cast<Bits>(c + ((block[j] & mask) == value));
    count += c;
  }
  for (; i < n; ++i) {
    Bits x;
    std::memcpy(&x, data + i * sizeof(Bits), sizeof(Bits));
    count += (x & mask) == value;
  }
  return count;
}

// NaN and Inf of an IEEE-style format: all-ones exponent; Inf when the rest of the magnitude is zero.
// The Inf pass runs only over data that has non-finite values at all (rare), keeping the common
// case at one masked compare per value.
template <typename Bits>
NonFinite count_ieee(const uint8_t* data, size_t size, Bits exponent, Bits magnitude) {
  size_t n = size / sizeof(Bits);
  uint64_t special = count_masked_equal<Bits>(data, n, exponent, exponent);
  if (special == 0) return {};
  uint64_t inf = count_masked_equal<Bits>(data, n, magnitude, exponent);
  return {special - inf, inf};
}

// Counts bytes whose value under `mask` equals `nan`.
NonFinite count_byte_nan(const uint8_t* data, size_t size, uint8_t mask, uint8_t nan) {
  return {count_masked_equal<uint8_t>(data, size, mask, nan), 0};
}

}  // namespace

Xxh64::Xxh64(uint64_t seed) : seed_(seed) {
  v_[0] = seed + kPrime1 + kPrime2;
  v_[1] = seed + kPrime2;
  v_[2] = seed;
  v_[3] = seed - kPrime1;
}

// Finding a lane equal to a mask in a word without branches: t = (w & M) ^ M is zero in exactly the
// lanes where all of M's bits are set; M leaves each lane's top bit clear, so t + (2^(bits-1) - 1)
// carries into the lane's top bit iff the lane of t is nonzero, and never into the next lane.
template <bool kFind>
bool Xxh64::update_impl(const void* data, size_t size, uint64_t mask, uint64_t low, uint64_t high) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + size;
  total_ += size;
  if (buffered_ + size < 32) {
    if (size) std::memcpy(buffer_ + buffered_, p, size);
    buffered_ += size;
    return false;
  }
  uint64_t found = 0;
  auto look = [&](uint64_t w) {
    if constexpr (kFind) found |= ~(((w & mask) ^ mask) + low) & high;
  };
  if (buffered_) {
    size_t fill = 32 - buffered_;
    std::memcpy(buffer_ + buffered_, p, fill);
    p += fill;
    for (int i = 0; i < 4; ++i) {
      uint64_t w = load64(buffer_ + 8 * i);
      look(w);
      v_[i] = round64(v_[i], w);
    }
    buffered_ = 0;
  }
  uint64_t v0 = v_[0], v1 = v_[1], v2 = v_[2], v3 = v_[3];
  for (; end - p >= 32; p += 32) {
    uint64_t w0 = load64(p), w1 = load64(p + 8), w2 = load64(p + 16), w3 = load64(p + 24);
    look(w0), look(w1), look(w2), look(w3);
    v0 = round64(v0, w0);
    v1 = round64(v1, w1);
    v2 = round64(v2, w2);
    v3 = round64(v3, w3);
  }
  v_[0] = v0, v_[1] = v1, v_[2] = v2, v_[3] = v3;
  buffered_ = static_cast<size_t>(end - p);
  if (buffered_) std::memcpy(buffer_, p, buffered_);
  return found != 0;
}

void Xxh64::update(const void* data, size_t size) { update_impl<false>(data, size, 0, 0, 0); }

bool Xxh64::update_and_find(const void* data, size_t size, uint64_t lane_mask, unsigned lane_bits) {
  uint64_t lane_top = lane_bits >= 64 ? 1ull << 63 : 1ull << (lane_bits - 1);
  uint64_t ones = 0;  // 1 in the lowest bit of every lane
  for (unsigned shift = 0; shift < 64; shift += lane_bits) ones |= 1ull << shift;
  uint64_t mask = 0;
  for (unsigned shift = 0; shift < 64; shift += lane_bits) mask |= lane_mask << shift;
  return update_impl<true>(data, size, mask, ones * (lane_top - 1), ones * lane_top);
}

uint64_t Xxh64::digest() const {
  uint64_t h;
  if (total_ >= 32) {
    h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
    for (int i = 0; i < 4; ++i) h = merge_round(h, v_[i]);
  } else {
    h = seed_ + kPrime5;
  }
  h += total_;
  const uint8_t* p = buffer_;
  const uint8_t* end = buffer_ + buffered_;
  for (; end - p >= 8; p += 8) h = rotl(h ^ round64(0, load64(p)), 27) * kPrime1 + kPrime4;
  if (end - p >= 4) {
    h = rotl(h ^ (static_cast<uint64_t>(load32(p)) * kPrime1), 23) * kPrime2 + kPrime3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ (*p * kPrime5), 11) * kPrime1;
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

uint64_t xxh64(const void* data, size_t size, uint64_t seed) {
  Xxh64 state(seed);
  state.update(data, size);
  return state.digest();
}

NonFinite count_non_finite(DType dtype, ByteView bytes) {
  const uint8_t* p = bytes.data;
  size_t n = bytes.size;
  switch (dtype) {
    case DType::F64:
      return count_ieee<uint64_t>(p, n, 0x7FF0000000000000ull, 0x7FFFFFFFFFFFFFFFull);
    case DType::F32:
      return count_ieee<uint32_t>(p, n, 0x7F800000u, 0x7FFFFFFFu);
    case DType::F16:
      return count_ieee<uint16_t>(p, n, 0x7C00, 0x7FFF);
    case DType::BF16:
      return count_ieee<uint16_t>(p, n, 0x7F80, 0x7FFF);
    case DType::F8_E5M2:
      return count_ieee<uint8_t>(p, n, 0x7C, 0x7F);
    case DType::F8_E4M3:  // the "fn" variant: S.1111.111 is NaN, no Inf
      return count_byte_nan(p, n, 0x7F, 0x7F);
    case DType::F8_E8M0:  // unsigned exponent: 0xFF is NaN
      return count_byte_nan(p, n, 0xFF, 0xFF);
    default:
      return {};
  }
}

std::vector<std::string> CheckpointDigest::non_finite_tensors() const {
  std::vector<std::string> names;
  for (const auto& t : per_tensor)
    if (t.non_finite.nan || t.non_finite.inf) names.push_back(t.name);
  return names;
}

namespace {

// The bits that are all set in a NaN or Inf of `dtype`, and the lane width, for the fused scan in
// Xxh64::update_and_find; {0, 0} where the fused scan does not apply (no NaN/Inf, or F8_E8M0 whose
// NaN 0xFF includes the lane's top bit): those dtypes are counted by a separate pass.
struct SpecialBits {
  uint64_t mask;
  unsigned lane_bits;
};
SpecialBits special_bits(DType dtype) {
  switch (dtype) {
    case DType::F64: return {0x7FF0000000000000ull, 64};
    case DType::F32: return {0x7F800000u, 32};
    case DType::F16: return {0x7C00, 16};
    case DType::BF16: return {0x7F80, 16};
    case DType::F8_E5M2: return {0x7C, 8};
    case DType::F8_E4M3: return {0x7F, 8};
    default: return {0, 0};
  }
}

// Hashes and scans one tensor a chunk at a time. Chunks are a multiple of 32 bytes, so every word but
// those of the tensor's last partial stripe passes the fused scan; only a chunk where the scan finds
// an all-ones exponent (and the last few bytes) is counted exactly.
void digest_tensor(const StoredTensor& tensor, TensorDigest& digest) {
  constexpr size_t kChunk = 256 << 10;
  ByteView view = tensor.bytes();
  digest.dtype = tensor.info->dtype;
  digest.bytes = view.size;
  SpecialBits special = special_bits(digest.dtype);
  bool separate_count = special.lane_bits == 0 && dtype_is_float(digest.dtype);
  Xxh64 hash;
  auto add = [&](const uint8_t* data, size_t n) {
    NonFinite bad = count_non_finite(digest.dtype, ByteView{data, n});
    digest.non_finite.nan += bad.nan;
    digest.non_finite.inf += bad.inf;
  };
  for (size_t done = 0; done < view.size;) {
    size_t n = std::min(kChunk, view.size - done);
    const uint8_t* chunk = view.data + done;
    if (special.lane_bits == 0) {
      hash.update(chunk, n);
      if (separate_count) add(chunk, n);
    } else if (hash.update_and_find(chunk, n, special.mask, special.lane_bits)) {
      add(chunk, n);
    } else if (done + n == view.size && n % 32) {
      add(chunk + n - n % 32, n % 32);  // the tail the fused scan did not see
    }
    done += n;
  }
  digest.xxh64 = hash.digest();
}

}  // namespace

CheckpointDigest verify_checkpoint(const CheckpointStore& store, unsigned threads) {
  auto start = std::chrono::steady_clock::now();
  CheckpointDigest result;
  const auto& names = store.tensor_names();
  result.per_tensor.resize(names.size());

  // Work list: shard by shard (index order), each shard in file order, so the mappings are read
  // front to back; workers take the next tensor from a shared counter.
  struct Item {
    size_t index;  // into names / per_tensor
    StoredTensor tensor;
  };
  std::vector<std::vector<Item>> by_shard;
  std::map<const SafetensorsFile*, size_t> shard_slot;
  for (size_t i = 0; i < names.size(); ++i) {
    StoredTensor t = store.tensor(names[i]);  // opens (and validates) shards on first use
    result.per_tensor[i].name = names[i];
    auto [it, inserted] = shard_slot.emplace(t.file.get(), by_shard.size());
    if (inserted) {
      by_shard.emplace_back();
      t.file->mapping().advise_streaming();
    }
    by_shard[it->second].push_back({i, std::move(t)});
  }
  std::vector<Item> work;
  work.reserve(names.size());
  for (auto& items : by_shard) {
    std::sort(items.begin(), items.end(),
              [](const Item& a, const Item& b) { return a.tensor.info->data_begin < b.tensor.info->data_begin; });
    for (Item& item : items) work.push_back(std::move(item));
  }

  if (threads == 0) threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  threads = static_cast<unsigned>(std::min<size_t>(threads, std::max<size_t>(work.size(), 1)));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < work.size();)
      digest_tensor(work[k].tensor, result.per_tensor[work[k].index]);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  Xxh64 total;
  for (const TensorDigest& d : result.per_tensor) {
    total.update(d.name.data(), d.name.size());
    total.update("", 1);
    uint8_t le[8];
    for (int b = 0; b < 8; ++b) le[b] = static_cast<uint8_t>(d.xxh64 >> (8 * b));
    total.update(le, 8);
    result.bytes += d.bytes;
    result.non_finite.nan += d.non_finite.nan;
    result.non_finite.inf += d.non_finite.inf;
  }
  result.tensors = result.per_tensor.size();
  result.checksum = total.digest();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace moeforge
