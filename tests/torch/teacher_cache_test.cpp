// Teacher caches: the manifest and both codecs (bit-packed bf16, compact exp-Golomb), the block
// index, round trips against the teacher itself, resumable sharded writing, training from a cache
// (equal to the online teacher at the same K, resumed exactly) and caches refused by field.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include "test_util.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "train/distill.h"
#include "train/teacher_cache.h"
#include "train/teacher_cache_codec.h"
#include "train_test_support.h"

namespace moeforge::train {
namespace {

using nlohmann::json;

TEST(TeacherCacheFormat, BitsBf16AndManifestRoundTrip) {
  std::mt19937_64 rng(3);
  for (int bits : {1, 3, 8, 17, 18, 20}) {
    std::vector<int64_t> v(37), back(37);
    for (auto& x : v) x = static_cast<int64_t>(rng() & ((uint64_t{1} << bits) - 1));
    std::vector<uint8_t> buf((37 * bits + 7) / 8);
    pack_bits(v.data(), 37, bits, buf.data());
    unpack_bits(buf.data(), 37, bits, back.data());
    EXPECT_EQ(v, back) << bits << " bits";
  }
  EXPECT_EQ(bits_for(201088), 18);  // GPT-OSS: 17 bits (Megatron) are too few
  EXPECT_EQ(bits_for(151936), 18);
  EXPECT_EQ(bits_for(256), 8);
  for (float f : {-0.0f, -1.5f, -3.14159f, -17.25f, -88.0f}) EXPECT_NEAR(bf16_to_float(float_to_bf16(f)), f, std::abs(f) / 256.0f);
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(-std::numeric_limits<float>::infinity()))));
  CacheManifest m;
  m.vocab = 300, m.top_k = 8, m.router_top_k = 2, m.num_experts = 8, m.moe_layers = {0, 1}, m.block_size = 16, m.train_blocks = 5,
  m.blocks_per_file = 2, m.teacher_vocab = 320, m.packing = "concat", m.codec = CacheCodec::Bf16;
  EXPECT_EQ(m.token_bytes(), (8 * 9 + 7) / 8 + 16 + 2 + 2 * ((2 * 3 + 7) / 8 + 4 + 2));
  EXPECT_EQ(m.num_files(), 3);
  EXPECT_EQ(m.blocks_in_file(2), 1);
  const CacheManifest back = CacheManifest::from_json(m.to_json(), "manifest.json");
  EXPECT_EQ(back.to_json(), m.to_json());
  auto j = m.to_json();
  j["version"] = 3;
  MOEFORGE_EXPECT_ERROR(CacheManifest::from_json(j, "c/manifest.json"), "version: is 3; this moeforge reads versions 1 to 2");
  j = m.to_json();
  j["layout"]["token_bytes"] = 3;
  MOEFORGE_EXPECT_ERROR(CacheManifest::from_json(j, "c/manifest.json"), "token_bytes: is 3 but the fields give");
  // Version 1 (bf16 only, no codec name) still reads.
  j = m.to_json();
  j["version"] = 1;
  j["codec"].erase("name");
  j["layout"].erase("router_bytes");
  EXPECT_EQ(CacheManifest::from_json(j, "v1/manifest.json").codec, CacheCodec::Bf16);
  m.codec = CacheCodec::Compact;
  EXPECT_EQ(CacheManifest::from_json(m.to_json(), "manifest.json").to_json(), m.to_json());
  j = m.to_json();
  j["codec"]["name"] = "zstd";
  MOEFORGE_EXPECT_ERROR(CacheManifest::from_json(j, "c/manifest.json"), "c/manifest.json: codec.name: unknown codec 'zstd'");
}

TEST(TeacherCacheCodec, ExpGolombRoundTripsAndCostsWhatItSays) {
  std::mt19937_64 rng(5);
  BitWriter w;
  std::vector<std::pair<uint64_t, int>> codes;
  int64_t bits = 0;
  for (int i = 0; i < 2000; ++i) {
    const int k = static_cast<int>(rng() % 20);
    const uint64_t v = rng() % (uint64_t{1} << (rng() % 24));
    codes.emplace_back(v, k);
    w.put_exp_golomb(v, k);
    bits += exp_golomb_bits(v, k);
    w.put(v & 7, 3);
    bits += 3;
  }
  w.align();
  EXPECT_EQ(static_cast<int64_t>(w.bytes().size()), (bits + 7) / 8);
  BitReader r(w.bytes().data(), w.bytes().size(), "stream");
  for (const auto& [v, k] : codes) {
    ASSERT_EQ(r.get_exp_golomb(k), v);
    ASSERT_EQ(r.get(3), v & 7);
  }
  EXPECT_EQ(exp_golomb_bits(0, 0), 1);
  EXPECT_EQ(exp_golomb_bits(1, 0), 3);
  EXPECT_EQ(exp_golomb_bits(5, 2), 5);  // 5 + 4 = 0b1001: one 1, a 0, three bits
  MOEFORGE_EXPECT_ERROR(r.get(9), "stream: damaged teacher cache: a token record runs past its block");
}

// KL(P || decoded) over the K ids + tail, P being what was encoded.
double bucket_kl(const std::vector<int64_t>& ids, const std::vector<float>& logp, float tail, const std::vector<int64_t>& dec_ids,
                 const std::vector<float>& dec_logp, float dec_tail) {
  std::map<int64_t, double> q;
  for (size_t i = 0; i < dec_ids.size(); ++i) q[dec_ids[i]] = dec_logp[i];
  double kl = 0;
  for (size_t i = 0; i < ids.size(); ++i) kl += std::exp(logp[i]) * (logp[i] - q.at(ids[i]));
  if (!std::isinf(tail)) kl += std::exp(tail) * (tail - dec_tail);
  return kl;
}

TEST(TeacherCacheCodec, CompactTokensKeepTheIdsAndStayWithinTheStatedKl) {
  const int64_t vocab = 201088, K = 64;
  torch::manual_seed(4);
  double worst = 0, bytes = 0, mean_kl = 0;
  const int tokens = 200;
  BitWriter w;
  std::vector<std::vector<int64_t>> all_ids;
  std::vector<std::vector<float>> all_logp;
  std::vector<float> tails;
  for (int t = 0; t < tokens; ++t) {
    // Distributions from peaked to flat (entropy ~0.5 to ~9 nats), ids anywhere in 18 bits.
    auto lp = torch::log_softmax(torch::randn({vocab}, torch::kFloat64) * (1.0 + 0.05 * t), 0);
    auto top = lp.topk(K);
    auto v = std::get<0>(top).to(torch::kFloat32).contiguous(), i = std::get<1>(top).contiguous();
    const double rest = torch::logsumexp(lp.scatter(0, std::get<1>(top), -INFINITY), 0).item<double>();
    all_ids.emplace_back(i.data_ptr<int64_t>(), i.data_ptr<int64_t>() + K);
    all_logp.emplace_back(v.data_ptr<float>(), v.data_ptr<float>() + K);
    tails.push_back(static_cast<float>(rest));
    encode_compact_token(all_ids.back().data(), all_logp.back().data(), tails.back(), K, bits_for(vocab), w);
  }
  w.align();
  bytes = static_cast<double>(w.bytes().size()) / tokens;
  BitReader r(w.bytes().data(), w.bytes().size(), "stream");
  for (int t = 0; t < tokens; ++t) {
    std::vector<int64_t> ids(K);
    std::vector<float> logp(K);
    float tail;
    decode_compact_token(r, K, vocab, ids.data(), logp.data(), &tail);
    std::vector<int64_t> want = all_ids[t];
    std::sort(want.begin() + 1, want.end());  // topk's first is the most likely
    ASSERT_EQ(ids, want) << t;  // lossless: the most likely first, then ascending
    const double kl = bucket_kl(all_ids[t], all_logp[t], tails[t], ids, logp, tail);
    EXPECT_GE(kl, -1e-6);
    worst = std::max(worst, kl);
    mean_kl += kl;
  }
  EXPECT_LT(worst, 7.7e-6 * K);  // the stated worst case (teacher_cache_codec.h)
  EXPECT_LT(mean_kl / tokens, 1.5 * 2.6e-6 * K);  // and about the stated mean
  EXPECT_LT(bytes, 160.0);       // uniform ids: the codec's worst realistic case
  EXPECT_GT(bytes, 100.0);
  // K = vocab: the tail is -inf and the probabilities sum to one.
  std::vector<int64_t> ids = {3, 0, 2, 1};
  std::vector<float> lp = {std::log(0.5f), std::log(0.25f), std::log(0.125f), std::log(0.125f)};
  BitWriter w4;
  encode_compact_token(ids.data(), lp.data(), -INFINITY, 4, 2, w4);
  w4.align();
  BitReader r4(w4.bytes().data(), w4.bytes().size(), "s");
  std::vector<int64_t> back(4);
  std::vector<float> blp(4);
  float tail;
  decode_compact_token(r4, 4, 4, back.data(), blp.data(), &tail);
  EXPECT_EQ(back, (std::vector<int64_t>{3, 0, 1, 2}));
  EXPECT_TRUE(std::isinf(tail));
  EXPECT_NEAR(std::exp(blp[0]), 0.5, 0.004);
  EXPECT_NEAR(std::exp(blp[0]) + std::exp(blp[1]) + std::exp(blp[2]) + std::exp(blp[3]), 1.0, 1e-6);
  // Damaged streams: an error naming the stream, never a crash or an id outside the vocabulary.
  std::mt19937_64 rng(1);
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<uint8_t> bad = w.bytes();
    bad.resize(static_cast<size_t>(rng() % bad.size()));
    for (int f = 0; f < 3 && !bad.empty(); ++f) bad[rng() % bad.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    BitReader rb(bad.data(), bad.size(), "bad");
    try {
      for (int t = 0; t < tokens; ++t) {
        std::vector<int64_t> i2(K);
        std::vector<float> l2(K);
        float t2;
        decode_compact_token(rb, K, vocab, i2.data(), l2.data(), &t2);
        for (int64_t x : i2) ASSERT_TRUE(x >= 0 && x < vocab);
      }
    } catch (const Error& e) {
      ++errors;
      ASSERT_NE(std::string(e.what()).find("bad: damaged teacher cache"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 250);  // most damage is caught here; the rest by the block checksums
}

TEST(TeacherCacheCodec, BlockIndexFindsBlocksAndRefusesTruncatedFiles) {
  CacheManifest m;
  m.vocab = 300, m.top_k = 8, m.block_size = 4, m.train_blocks = 3, m.blocks_per_file = 3, m.codec = CacheCodec::Compact;
  BlockIndex index{{0, 20, 45, 70}, {11, 22, 33}};
  std::vector<uint8_t> file(70, 7);
  const auto bytes = block_index_bytes(index);
  file.insert(file.end(), bytes.begin(), bytes.end());
  std::string why;
  auto back = read_block_index(m, 0, file.data(), file.size(), &why);
  EXPECT_EQ(back.offsets, index.offsets);
  EXPECT_EQ(back.checksums, index.checksums);
  EXPECT_TRUE(read_block_index(m, 0, file.data(), file.size() - 1, &why).empty());
  EXPECT_EQ(why, "no block index at its end (an interrupted or damaged file)");
  m.train_blocks = m.blocks_per_file = 4;
  EXPECT_TRUE(read_block_index(m, 0, file.data(), file.size(), &why).empty());
  EXPECT_EQ(why, "its index lists 3 blocks, the manifest 4");
  m.train_blocks = m.blocks_per_file = 3;
  file[70 + 8] = 0xFF;  // offsets[1] now beyond the blocks
  EXPECT_TRUE(read_block_index(m, 0, file.data(), file.size(), &why).empty());
  EXPECT_EQ(why, "its block index is damaged");
}

class TeacherCacheRun : public test::TinyMixtralSuite {
 protected:
  TeacherCacheOptions cache_options(const std::filesystem::path& teacher, const std::string& out, int64_t K, int64_t R) {
    TeacherCacheOptions o;
    o.teacher_dir = teacher;
    o.tokenizer_dir = fx->tokenizer;
    o.out_dir = fx->tmp / out;
    o.data_cache_dir = fx->cache;
    o.data_spec = fx->data.string();
    o.block_size = 16;
    o.top_k = K;
    o.router_top_k = R;
    o.seed = 1;  // TrainFixture::recipe's
    o.progress = false;
    return o;
  }
};

// The fixture's data as the caches above see it (block 16, seed 1, nothing held out).
data::Dataset cached_blocks(test::TrainFixture* fx) {
  data::DataOptions dopt;
  dopt.block_size = 16;
  dopt.seed = 1;
  dopt.validation_fraction = 0.0;
  dopt.cache_dir = fx->cache;
  return data::Dataset::open(fx->data.string(), fx->tokenizer, dopt);
}

// Both codecs against the teacher itself: ids exact, log-probabilities within the codec's error.
void round_trip(test::TrainFixture* fx, CacheCodec codec, TeacherCacheOptions o, const std::filesystem::path& teacher) {
  o.codec = codec;
  o.file_bytes = 20000;  // several files
  auto rep = write_teacher_cache(o);
  EXPECT_GT(rep.manifest.num_files(), 1);
  EXPECT_EQ(rep.files_written, rep.manifest.num_files());
  EXPECT_EQ(rep.manifest.vocab, 300);  // the tokenizer's ids; the padded rows are not stored
  TeacherCacheReader reader(o.out_dir);
  auto ds = cached_blocks(fx);
  data::BatchIterator it(ds, data::Split::Train, {3, 5, true, true});
  data::Batch b;
  it.next(b);
  auto tt = reader.lookup(b, true);
  // Reference: the teacher itself on the same blocks.
  model::LoadOptions lo;
  auto model = model::Transformer::load(teacher, lo);
  auto ids = torch::from_blob(b.ids.data(), {b.batch_size, 16}, torch::kInt32).to(torch::kInt64);
  torch::NoGradGuard ng;
  auto out = model->forward(ids);
  auto lp = torch::log_softmax(out.logits.reshape({-1, 310}).narrow(1, 0, 300), 1);
  auto top = lp.topk(8, 1);
  auto tail = bucketed_logp(lp, std::get<1>(top)).select(1, 8);
  EXPECT_LT((tt.tail_logp_N - tail).abs().max().item<double>(), 0.03);
  if (codec == CacheCodec::Bf16) {
    EXPECT_TRUE(torch::equal(tt.top_ids_NK, std::get<1>(top)));
    EXPECT_LT((tt.top_logp_NK - std::get<0>(top)).abs().max().item<double>(), 0.05);  // bf16 of values up to ~|6|
  } else {
    // compact: the most likely id first, then the others ascending
    auto want = torch::cat({std::get<1>(top).narrow(1, 0, 1), std::get<0>(std::get<1>(top).narrow(1, 1, 7).sort(1))}, 1);
    EXPECT_TRUE(torch::equal(tt.top_ids_NK, want));
    auto P = bucketed_logp(lp, want);
    auto Q = torch::cat({tt.top_logp_NK, tt.tail_logp_N.unsqueeze(1)}, 1);
    const double kl = (P.exp() * (P - Q)).sum(1).max().item<double>();
    EXPECT_LT(kl, 7.7e-6 * 8 + 1e-4);  // the codec's worst case + the tail's bf16
  }
  ASSERT_EQ(tt.router_ids_NR.size(), out.routing.size());
  auto rl = out.routing[0].logits.to(torch::kFloat32);
  auto rtop = rl.topk(2, 1);
  EXPECT_TRUE(torch::equal(tt.router_ids_NR[0], std::get<1>(rtop)));
  EXPECT_LT((tt.router_logits_NR[0] - std::get<0>(rtop)).abs().max().item<double>(), 0.02);
  auto rrest = torch::logsumexp(rl.scatter(1, std::get<1>(rtop), -std::numeric_limits<float>::infinity()), 1);
  EXPECT_LT((tt.router_tail_N[0] - rrest).abs().max().item<double>(), 0.02);
  // A mismatching block is caught by its hash.
  b.ids[3] = (b.ids[3] + 1) % 300;
  MOEFORGE_EXPECT_ERROR(reader.lookup(b, false), "holds other tokens than the cache's");
  const std::string inspected = inspect_teacher_cache(o.out_dir);
  EXPECT_NE(inspected.find("; complete"), std::string::npos) << inspected;
  EXPECT_NE(inspected.find(std::string("codec ") + cache_codec_name(codec)), std::string::npos) << inspected;
}

TEST_F(TeacherCacheRun, RoundTripMatchesTheTeacherWithinEachCodec) {
  auto teacher = fx->model("cache-teacher", "mixtral", {{"vocab_size", 310}}, 9);
  round_trip(fx, CacheCodec::Bf16, cache_options(teacher, "cache-rt-bf16", 8, 2), teacher);  // router top-2 of 4: the rest as one bucket
  round_trip(fx, CacheCodec::Compact, cache_options(teacher, "cache-rt-compact", 8, 2), teacher);
}

TEST_F(TeacherCacheRun, ATruncatedFileIsRewrittenAndRefusedUntilThen) {
  auto teacher = fx->model("cache-teacher4", "mixtral", {}, 9);
  auto o = cache_options(teacher, "cache-cut", 8, 0);
  o.file_bytes = 4000;
  auto first = write_teacher_cache(o);
  ASSERT_GT(first.manifest.num_files(), 1);
  const auto path = o.out_dir / first.manifest.file_name(1);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 3);
  MOEFORGE_EXPECT_ERROR(TeacherCacheReader{o.out_dir}, "blocks-000001.bin: no block index at its end");
  EXPECT_NE(inspect_teacher_cache(o.out_dir).find("incomplete, missing blocks-000001.bin"), std::string::npos);
  auto again = write_teacher_cache(o);
  EXPECT_EQ(again.files_written, 1);
  EXPECT_EQ(std::filesystem::file_size(path), size);
  TeacherCacheReader ok(o.out_dir);
  // A flipped byte inside a block: refused by the block's checksum when read.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    char c;
    f.seekg(40);
    f.get(c);
    f.seekp(40);
    f.put(static_cast<char>(c ^ 0x10));
  }
  TeacherCacheReader damaged(o.out_dir);
  auto ds = cached_blocks(fx);
  data::BatchIterator it(ds, data::Split::Train, {static_cast<int64_t>(ds.num_blocks(data::Split::Train)), 5, false, true});
  data::Batch b;
  it.next(b);
  MOEFORGE_EXPECT_ERROR(damaged.lookup(b, false), "blocks-000001.bin: block ");
}



TEST_F(TeacherCacheRun, TrainingFromTheCacheEqualsOnlineTopKAndResumesExactly) {
  auto teacher = fx->model("cache-teacher2", "mixtral", {}, 9);
  auto co = cache_options(teacher, "cache-train", 16, 4);  // router top-4 of 4: router KD exact
  // Two shards written by two "processes": the first leaves the cache incomplete.
  co.file_bytes = 30000;
  co.shard_count = 2;
  co.shard_index = 0;
  auto first = write_teacher_cache(co);
  ASSERT_GT(first.files_missing, 0);
  json distill = {{"router_weight", 0.5}};
  json phase = {{"steps", 3}, {"select", "router"}, {"losses", {{"distill", distill}}}};
  json recipe = test::TrainFixture::recipe(phase, {{"log_every", 1}, {"checkpoint_every", 1}});
  {
    auto o = fx->options(mixtral, recipe, "from-partial-cache");
    o.teacher_cache = co.out_dir;
    train::Trainer t(o);
    MOEFORGE_EXPECT_ERROR(t.run(), "incomplete teacher cache");
  }
  co.shard_index = 1;
  auto second = write_teacher_cache(co);
  EXPECT_EQ(second.files_missing, 0);
  EXPECT_EQ(second.files_present, first.files_written);
  auto offline = fx->options(mixtral, recipe, "from-cache");
  offline.teacher_cache = co.out_dir;
  train::Trainer a(offline);
  ASSERT_TRUE(a.run().finished);
  json online_phase = phase;
  online_phase["losses"]["distill"]["teacher"] = teacher.string();
  online_phase["losses"]["distill"]["top_k"] = 16;
  train::Trainer b(fx->options(mixtral, test::TrainFixture::recipe(online_phase, {{"log_every", 1}}), "online-top16"));
  ASSERT_TRUE(b.run().finished);
  auto ma = test::read_metrics(offline.out_dir), mb = test::read_metrics(fx->tmp / "online-top16");
  ASSERT_EQ(ma.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(ma[i]["kd"].get<double>(), mb[i]["kd"].get<double>(), 0.02 * mb[i]["kd"].get<double>() + 1e-6) << i;
    EXPECT_NEAR(ma[i]["router_kd"].get<double>(), mb[i]["router_kd"].get<double>(), 0.02 * mb[i]["router_kd"].get<double>() + 1e-6) << i;
  }
  auto run = read_json_file(offline.out_dir / "run.json");
  EXPECT_EQ(run["teacher_cache"].get<std::string>(), std::filesystem::absolute(co.out_dir).string());
  // Interrupted and resumed (run.json brings the cache back): bitwise the same result.
  auto o2 = fx->options(mixtral, recipe, "from-cache-resumed");
  o2.teacher_cache = co.out_dir;
  o2.stop_after_steps = 1;
  {
    train::Trainer t(o2);
    EXPECT_FALSE(t.run().finished);
  }
  train::TrainOptions again;
  again.out_dir = o2.out_dir;
  again.resume = true;
  again.progress = false;
  again.data_cache_dir = fx->cache;
  train::Trainer resumed(again);
  ASSERT_TRUE(resumed.run().finished);
  EXPECT_EQ(test::file_bytes(offline.out_dir / "trainable.safetensors"), test::file_bytes(o2.out_dir / "trainable.safetensors"));
}

TEST_F(TeacherCacheRun, ASmallerTopKFoldsTheCacheLikeAnOnlineTopK) {
  auto teacher = fx->model("cache-teacher5", "mixtral", {}, 9);
  auto co = cache_options(teacher, "cache-fold", 24, 0);
  co.codec = CacheCodec::Bf16;
  write_teacher_cache(co);
  json phase = {{"steps", 2}, {"select", "router"}, {"losses", {{"distill", {{"top_k", 6}}}}}};
  json recipe = test::TrainFixture::recipe(phase, {{"log_every", 1}});
  auto offline = fx->options(mixtral, recipe, "fold-cache");
  offline.teacher_cache = co.out_dir;
  train::Trainer a(offline);
  ASSERT_TRUE(a.run().finished);
  phase["losses"]["distill"]["teacher"] = teacher.string();
  train::Trainer b(fx->options(mixtral, test::TrainFixture::recipe(phase, {{"log_every", 1}}), "fold-online"));
  ASSERT_TRUE(b.run().finished);
  auto ma = test::read_metrics(offline.out_dir), mb = test::read_metrics(fx->tmp / "fold-online");
  ASSERT_EQ(ma.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(ma[i]["kd"].get<double>(), mb[i]["kd"].get<double>(), 0.02 * mb[i]["kd"].get<double>() + 1e-6) << i;
    EXPECT_EQ(ma[i]["agreement"].get<double>(), mb[i]["agreement"].get<double>()) << i;
  }
  phase["losses"]["distill"].erase("teacher");
  phase["losses"]["distill"]["top_k"] = 32;
  auto more = fx->options(mixtral, test::TrainFixture::recipe(phase), "fold-too-many");
  more.teacher_cache = co.out_dir;
  train::Trainer c(more);
  MOEFORGE_EXPECT_ERROR(c.run(), "top_k is 24, phase 'phase0' asks 32 (a cache can give its K or fewer");
  auto dev = fx->options(mixtral, test::TrainFixture::recipe(phase), "teacher-device-with-cache");
  dev.teacher_cache = co.out_dir;
  dev.teacher_device = "cpu";
  train::Trainer d(dev);
  MOEFORGE_EXPECT_ERROR(d.run(), "--teacher-device needs an online teacher");
}

TEST_F(TeacherCacheRun, ACacheOfOtherDataOrSettingsIsRefusedByField) {
  auto teacher = fx->model("cache-teacher3", "mixtral", {}, 9);
  auto co = cache_options(teacher, "cache-other", 4, 0);
  co.block_size = 12;
  write_teacher_cache(co);
  json phase = {{"steps", 1}, {"select", "router"}, {"losses", {{"distill", json::object()}}}};
  auto o = fx->options(mixtral, test::TrainFixture::recipe(phase), "wrong-cache");
  o.teacher_cache = co.out_dir;
  {
    train::Trainer t(o);
    MOEFORGE_EXPECT_ERROR(t.run(), "data.block_size: the cache has 12, this run 16");
  }
  phase["losses"]["distill"]["router_weight"] = 1.0;
  o = fx->options(mixtral, test::TrainFixture::recipe(phase), "wrong-cache2");
  o.teacher_cache = co.out_dir;
  {
    train::Trainer t(o);
    MOEFORGE_EXPECT_ERROR(t.run(), "router_top_k is 0 (no router logits stored)");
  }
  // The same --out with other settings: refused, nothing overwritten.
  co.top_k = 5;
  MOEFORGE_EXPECT_ERROR(write_teacher_cache(co), "this run would write another cache (top_k differs: 4 vs 5)");
}

}  // namespace
}  // namespace moeforge::train
