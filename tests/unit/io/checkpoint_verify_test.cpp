// `info --verify`: XXH64 against the reference values, NaN/Inf counting per dtype, and a full read
// of a sharded checkpoint whose checksum does not depend on how it is sharded.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "io/checkpoint_store.h"
#include "io/checkpoint_verify.h"
#include "io/checkpoint_writer.h"
#include "test_util.h"

namespace moeforge {
namespace {

uint64_t hash_of(const std::string& s) { return xxh64(s.data(), s.size()); }

template <typename T>
ByteView view_of(const std::vector<T>& values) {
  return ByteView{reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(T)};
}

TEST(Xxh64, MatchesReferenceValues) {
  // Values of the reference implementation (xxhsum -H1, python xxhash.xxh64).
  EXPECT_EQ(hash_of(""), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(hash_of("a"), 0xD24EC4F1A98C6E5Bull);
  EXPECT_EQ(hash_of("abc"), 0x44BC2CF5AD770999ull);
  EXPECT_EQ(hash_of("Nobody inspects the spammish repetition"), 0xFBCEA83C8A378BF1ull);
}

TEST(Xxh64, StreamingEqualsOneShot) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  for (size_t split : {0u, 1u, 5u, 31u, 32u, 33u, 64u, 500u, 999u, 1000u}) {
    for (size_t second : {0u, 3u, 40u}) {
      size_t b = std::min(data.size(), split + second);
      Xxh64 state;
      state.update(data.data(), split);
      state.update(data.data() + split, b - split);
      state.update(data.data() + b, data.size() - b);
      EXPECT_EQ(state.digest(), hash_of(data)) << split << "+" << second;
    }
  }
  EXPECT_NE(xxh64(data.data(), data.size(), 1), hash_of(data));  // the seed matters
}

TEST(Xxh64, UpdateAndFindSeesEveryLaneOfEveryStripe) {
  struct Case {
    unsigned bits;
    uint64_t mask;
  };
  for (Case c : {Case{8, 0x7C}, Case{8, 0x7F}, Case{16, 0x7F80}, Case{16, 0x7C00}, Case{32, 0x7F800000},
                 Case{64, 0x7FF0000000000000ull}}) {
    size_t lane_bytes = c.bits / 8;
    for (size_t at = 0; at + lane_bytes <= 96; at += lane_bytes) {
      std::string data(96, '\0');
      for (size_t b = 0; b < lane_bytes; ++b) data[at + b] = static_cast<char>(c.mask >> (8 * b));
      Xxh64 state;
      EXPECT_TRUE(state.update_and_find(data.data(), data.size(), c.mask, c.bits)) << c.bits << " at " << at;
      EXPECT_EQ(state.digest(), hash_of(data));
      // one bit short of the mask, in the same lane: not found
      uint64_t near = c.mask & (c.mask - 1);
      for (size_t b = 0; b < lane_bytes; ++b) data[at + b] = static_cast<char>(near >> (8 * b));
      Xxh64 other;
      EXPECT_FALSE(other.update_and_find(data.data(), data.size(), c.mask, c.bits)) << c.bits << " at " << at;
    }
  }
}

TEST(CountNonFinite, FloatDtypes) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> f32 = {1.0f, -inf, nan, inf, 0.0f, -nan, 3e38f, std::numeric_limits<float>::denorm_min()};
  NonFinite n = count_non_finite(DType::F32, view_of(f32));
  EXPECT_EQ(n.nan, 2u);
  EXPECT_EQ(n.inf, 2u);
  std::vector<double> f64 = {1.0, std::numeric_limits<double>::infinity(), std::nan(""), 1e308};
  n = count_non_finite(DType::F64, view_of(f64));
  EXPECT_EQ(n.nan, 1u);
  EXPECT_EQ(n.inf, 1u);
  // bf16: 0x7F80 +Inf, 0xFF80 -Inf, 0x7FC0 NaN, 0x7F7F max finite; f16: 0x7C00 Inf, 0x7E00 NaN, 0x7BFF max
  std::vector<uint16_t> bf16 = {0x7F80, 0xFF80, 0x7FC0, 0x7F7F, 0x3F80, 0xFFC1};
  n = count_non_finite(DType::BF16, view_of(bf16));
  EXPECT_EQ(n.nan, 2u);
  EXPECT_EQ(n.inf, 2u);
  std::vector<uint16_t> f16 = {0x7C00, 0x7E00, 0x7BFF, 0xFC00, 0x3C00};
  n = count_non_finite(DType::F16, view_of(f16));
  EXPECT_EQ(n.nan, 1u);
  EXPECT_EQ(n.inf, 2u);
  // float8: e4m3fn NaN = S.1111.111 (no Inf, 0x7E is 448); e5m2 like f16; e8m0 NaN = 0xFF
  std::vector<uint8_t> e4m3 = {0x7F, 0xFF, 0x7E, 0x78};
  n = count_non_finite(DType::F8_E4M3, view_of(e4m3));
  EXPECT_EQ(n.nan, 2u);
  EXPECT_EQ(n.inf, 0u);
  std::vector<uint8_t> e5m2 = {0x7C, 0xFC, 0x7D, 0x7B};
  n = count_non_finite(DType::F8_E5M2, view_of(e5m2));
  EXPECT_EQ(n.nan, 1u);
  EXPECT_EQ(n.inf, 2u);
  std::vector<uint8_t> e8m0 = {0xFF, 0x7F, 0xFE};
  EXPECT_EQ(count_non_finite(DType::F8_E8M0, view_of(e8m0)).nan, 1u);
  // integers never count
  std::vector<uint32_t> ints = {0x7F800000u, 0xFFFFFFFFu};
  n = count_non_finite(DType::I32, view_of(ints));
  EXPECT_EQ(n.nan + n.inf, 0u);
}

// Writes tensors a..g (F32 with a NaN and an Inf in 'c', a BF16 'd' of 300 KB spanning several read
// chunks, an I32 'e', an F16 'f' with a NaN in its last bytes, an F32 'g' of 400 KB with a NaN in
// its second chunk) into `out`, `max_shard_bytes` per shard.
void write_model(const std::filesystem::path& out, uint64_t max_shard_bytes, float c_value) {
  std::vector<TensorDecl> decls = {{"a", DType::F32, {3, 5}},
                                   {"b", DType::F32, {7}},
                                   {"c", DType::F32, {4}},
                                   {"d", DType::BF16, {150000}},
                                   {"e", DType::I32, {2}},
                                   {"f", DType::F16, {37}},
                                   {"g", DType::F32, {100000}}};
  WriterOptions options;
  options.max_shard_bytes = max_shard_bytes;
  CheckpointWriter writer(out, decls, options);
  auto put = [&](const std::string& name, const void* data, size_t size) {
    writer.write(name, ByteView{static_cast<const uint8_t*>(data), size});
  };
  std::vector<float> a(15), b(7);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * static_cast<float>(i);
  for (size_t i = 0; i < b.size(); ++i) b[i] = -1.0f * static_cast<float>(i);
  std::vector<float> c = {c_value, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 2.0f};
  std::vector<uint16_t> d(150000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint16_t>(0x3F80 + i % 64);
  d[149999] = 0xFF80;  // -Inf in the last chunk
  std::vector<int32_t> e = {0x7F800000, -1};
  put("a", a.data(), a.size() * 4);
  put("b", b.data(), b.size() * 4);
  put("c", c.data(), c.size() * 4);
  put("d", d.data(), d.size() * 2);
  put("e", e.data(), e.size() * 4);
  std::vector<uint16_t> f(37, 0x3C00);
  f[36] = 0x7E00;  // NaN in the last 10 bytes, past the last whole 32-byte stripe
  put("f", f.data(), f.size() * 2);
  std::vector<float> g(100000, 0.25f);
  g[70001] = std::numeric_limits<float>::quiet_NaN();  // second 256 KiB chunk
  put("g", g.data(), g.size() * 4);
  writer.commit();
}

TEST(VerifyCheckpoint, ReadsEveryTensorOfAShardedCheckpoint) {
  test::TempDir dir;
  write_model(dir / "sharded", 1, 1.0f);  // one tensor per shard
  write_model(dir / "single", 1ull << 30, 1.0f);
  write_model(dir / "changed", 1, 1.5f);
  auto store = CheckpointStore::open(dir / "sharded");
  ASSERT_EQ(store->shard_files().size(), 7u);
  CheckpointDigest d = verify_checkpoint(*store);
  EXPECT_EQ(d.tensors, 7u);
  EXPECT_EQ(d.bytes, 60u + 28 + 16 + 300000 + 8 + 74 + 400000);
  ASSERT_EQ(d.per_tensor.size(), 7u);
  for (const TensorDigest& t : d.per_tensor) {
    ByteView bytes = store->tensor(t.name).bytes();
    EXPECT_EQ(t.xxh64, xxh64(bytes.data, bytes.size)) << t.name;
    EXPECT_EQ(t.bytes, bytes.size);
  }
  EXPECT_EQ(d.per_tensor[3].name, "d");
  EXPECT_EQ(d.per_tensor[3].dtype, DType::BF16);
  EXPECT_EQ(d.non_finite.nan, 3u);
  EXPECT_EQ(d.non_finite.inf, 2u);
  EXPECT_EQ(d.non_finite_tensors(), (std::vector<std::string>{"c", "d", "f", "g"}));
  EXPECT_EQ(d.per_tensor[5].non_finite.nan, 1u);
  EXPECT_EQ(d.per_tensor[6].non_finite.nan, 1u);
  EXPECT_EQ(d.per_tensor[4].non_finite.nan + d.per_tensor[4].non_finite.inf, 0u);  // I32 bit patterns do not count

  // Any number of reader threads gives the same digest.
  for (unsigned threads : {1u, 3u, 16u}) {
    CheckpointDigest again = verify_checkpoint(*store, threads);
    EXPECT_EQ(again.checksum, d.checksum) << threads;
    for (size_t i = 0; i < d.per_tensor.size(); ++i) {
      EXPECT_EQ(again.per_tensor[i].xxh64, d.per_tensor[i].xxh64);
      EXPECT_EQ(again.per_tensor[i].non_finite.nan, d.per_tensor[i].non_finite.nan);
    }
  }

  // The checkpoint checksum depends on names and bytes, not on the sharding.
  CheckpointDigest single = verify_checkpoint(*CheckpointStore::open(dir / "single"));
  EXPECT_EQ(single.checksum, d.checksum);
  CheckpointDigest changed = verify_checkpoint(*CheckpointStore::open(dir / "changed"));
  EXPECT_NE(changed.checksum, d.checksum);
  EXPECT_NE(changed.per_tensor[2].xxh64, d.per_tensor[2].xxh64);
  EXPECT_EQ(changed.per_tensor[3].xxh64, d.per_tensor[3].xxh64);
}

}  // namespace
}  // namespace moeforge
