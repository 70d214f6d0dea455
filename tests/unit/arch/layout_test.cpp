// Expert layouts both ways: canonical -> on-disk (per expert, fused concat, GPT-OSS interleaved,
// MXFP4) -> canonical, verbatim MXFP4 passthrough, and validate_store's messages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "arch/expected_tensors.h"
#include "arch/expert_io.h"
#include "arch/family_adapter.h"
#include "arch/float_convert.h"
#include "arch/mxfp4.h"
#include "arch/validate_store.h"
#include "common/error.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "test_util.h"

namespace moeforge {
namespace {

using nlohmann::json;

json moe_config(const std::string& type) {
  return json{{"model_type", type},         {"hidden_size", 32},        {"num_hidden_layers", 1},
              {"num_attention_heads", 2},   {"num_key_value_heads", 1}, {"head_dim", 16},
              {"vocab_size", 8},            {"intermediate_size", 32},  {"moe_intermediate_size", 32},
              {"num_experts", 3},           {"num_local_experts", 3},   {"num_experts_per_tok", 2},
              {"shared_expert_intermediate_size", 0}};
}

ExpertWeights make_expert(int64_t H, int64_t F, int seed, bool biases) {
  ExpertWeights w;
  w.hidden_size = H;
  w.intermediate_size = F;
  auto fill = [&](std::vector<float>& v, size_t n, int salt) {
    v.resize(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(seed * 7 + salt));
  };
  fill(w.gate, F * H, 1);
  fill(w.up, F * H, 2);
  fill(w.down, H * F, 3);
  if (biases) {
    fill(w.gate_bias, F, 4);
    fill(w.up_bias, F, 5);
    fill(w.down_bias, H, 6);
  }
  return w;
}

// Writes config.json + model.safetensors holding `tensors` into `dir` and opens it.
std::shared_ptr<CheckpointStore> write_store(const std::filesystem::path& dir, const json& config,
                                             const std::vector<EncodedTensor>& tensors) {
  std::filesystem::create_directories(dir);
  std::vector<std::pair<TensorDecl, std::string>> items;
  for (const EncodedTensor& t : tensors)
    items.emplace_back(t.decl, std::string(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size()));
  test::write_text_file(dir / "model.safetensors", serialize_safetensors(items, {{"format", "pt"}}));
  test::write_text_file(dir / "config.json", config.dump());
  return CheckpointStore::open(dir);
}

void expect_same(const ExpertWeights& a, const ExpertWeights& b, float tol = 0.0f) {
  auto near = [&](const std::vector<float>& x, const std::vector<float>& y, const char* what) {
    ASSERT_EQ(x.size(), y.size()) << what;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], tol) << what << "[" << i << "]";
  };
  near(a.gate, b.gate, "gate");
  near(a.up, b.up, "up");
  near(a.down, b.down, "down");
  near(a.gate_bias, b.gate_bias, "gate_bias");
  near(a.up_bias, b.up_bias, "up_bias");
  near(a.down_bias, b.down_bias, "down_bias");
}

std::vector<ExpertSource> sources(const std::vector<ExpertWeights>& experts) {
  std::vector<ExpertSource> out;
  for (const ExpertWeights& w : experts) out.push_back(ExpertSource::from(w));
  return out;
}

TEST(ArchLayout, GptOssInterleavedRoundTripAndLayout) {
  test::TempDir tmp;
  ModelSpec spec = spec_from_config(moe_config("gpt_oss"), nullptr, "test");
  ASSERT_EQ(spec.moe.layout, ExpertLayout::FusedInterleaved);
  std::vector<ExpertWeights> experts = {make_expert(32, 32, 0, true), make_expert(32, 32, 1, true),
                                        make_expert(32, 32, 2, true)};
  auto tensors = encode_layer_experts(spec, 0, sources(experts), DType::F32);
  ASSERT_EQ(tensors.size(), 4u);
  EXPECT_EQ(tensors[0].decl.name, "model.layers.0.mlp.experts.gate_up_proj");
  EXPECT_EQ(tensors[0].decl.shape, (std::vector<int64_t>{3, 32, 64}));
  // gate_up[e=1][h=5][2f] == gate[f][h], [2f+1] == up[f][h]; down[e][f][h] == down[h][f].
  const float* gu = reinterpret_cast<const float*>(tensors[0].bytes.data());
  EXPECT_EQ(gu[(1 * 32 + 5) * 64 + 2 * 7], experts[1].gate[7 * 32 + 5]);
  EXPECT_EQ(gu[(1 * 32 + 5) * 64 + 2 * 7 + 1], experts[1].up[7 * 32 + 5]);
  const float* down = reinterpret_cast<const float*>(tensors[1].bytes.data());
  EXPECT_EQ(tensors[1].decl.name, "model.layers.0.mlp.experts.down_proj");
  EXPECT_EQ(down[(2 * 32 + 9) * 32 + 4], experts[2].down[4 * 32 + 9]);
  auto store = write_store(tmp / "m", moe_config("gpt_oss"), tensors);
  for (int e = 0; e < 3; ++e) expect_same(read_expert(spec, *store, 0, e), experts[e]);
  // Re-encoding from the store (decoded, since dtypes match it is copied) gives identical bytes.
  std::vector<ExpertSource> copies;
  for (int e = 0; e < 3; ++e) copies.push_back(ExpertSource::copy_of(spec, *store, 0, e));
  auto again = encode_layer_experts(spec, 0, copies, DType::F32);
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].bytes, tensors[i].bytes) << again[i].decl.name;
}

TEST(ArchLayout, Mxfp4QuantiseReadAndPassthrough) {
  test::TempDir tmp;
  json config = moe_config("gpt_oss");
  config["quantization_config"] = {{"quant_method", "mxfp4"}};
  ModelSpec spec = spec_from_config(config, nullptr, "test");
  ASSERT_EQ(spec.moe.layout, ExpertLayout::Mxfp4);
  std::vector<ExpertWeights> experts = {make_expert(32, 32, 0, true), make_expert(32, 32, 1, true),
                                        make_expert(32, 32, 2, true)};
  auto tensors = encode_layer_experts(spec, 0, sources(experts), DType::BF16);
  ASSERT_EQ(tensors.size(), 6u);
  EXPECT_EQ(tensors[0].decl.name, "model.layers.0.mlp.experts.gate_up_proj_blocks");
  EXPECT_EQ(tensors[0].decl.shape, (std::vector<int64_t>{3, 64, 1, 16}));
  EXPECT_EQ(tensors[1].decl.shape, (std::vector<int64_t>{3, 64, 1}));
  EXPECT_EQ(tensors[3].decl.shape, (std::vector<int64_t>{3, 32, 1}));
  EXPECT_EQ(tensors[4].decl.dtype, DType::BF16);
  auto store = write_store(tmp / "q", config, tensors);
  detect_expert_layout(spec, *store);
  EXPECT_EQ(spec.moe.layout, ExpertLayout::Mxfp4);
  for (int e = 0; e < 3; ++e) {
    ExpertWeights got = read_expert(spec, *store, 0, e);
    // |x| <= 1 here, so the block scale is 2^-2 and the FP4 step at most 2 x 0.25; error <= 0.25.
    expect_same(got, experts[e], 0.25f);
    // Row 2f of gate_up holds gate[f]: dequantise it by hand from the blocks.
    float row[32];
    const uint8_t* blocks = tensors[0].bytes.data() + (e * 64 + 2 * 3) * 16;
    const uint8_t* scale = tensors[1].bytes.data() + e * 64 + 2 * 3;
    mxfp4_dequantize_rows(blocks, scale, 1, 1, row);
    for (int h = 0; h < 32; ++h) EXPECT_EQ(got.gate[3 * 32 + h], row[h]);
  }
  // Expert 0 replaced by new weights, experts 1-2 copied: their blocks/scales stay bit-identical.
  ExpertWeights fresh = make_expert(32, 32, 9, false);
  std::vector<ExpertSource> plan = {ExpertSource::from(fresh), ExpertSource::copy_of(spec, *store, 0, 1),
                                    ExpertSource::copy_of(spec, *store, 0, 2)};
  auto out = encode_layer_experts(spec, 0, plan, DType::BF16);
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t per = out[i].bytes.size() / 3;
    EXPECT_EQ(std::memcmp(out[i].bytes.data() + per, tensors[i].bytes.data() + per, 2 * per), 0) << out[i].decl.name;
  }
  // Missing canonical biases are written as zeros.
  const uint16_t* bias = reinterpret_cast<const uint16_t*>(out[4].bytes.data());
  EXPECT_EQ(bias[0], 0);
}

TEST(ArchLayout, PerExpertAndFusedConcatRoundTrip) {
  test::TempDir tmp;
  for (const char* type : {"qwen3_moe", "mixtral", "olmoe"}) {
    for (ExpertLayout layout : {ExpertLayout::PerExpert, ExpertLayout::FusedConcat}) {
      ModelSpec spec = spec_from_config(moe_config(type), nullptr, "test");
      spec.moe.layout = layout;
      std::vector<ExpertWeights> experts = {make_expert(32, 32, 3, false), make_expert(32, 32, 4, false),
                                            make_expert(32, 32, 5, false)};
      auto tensors = encode_layer_experts(spec, 0, sources(experts), DType::BF16);
      EXPECT_EQ(tensors.size(), layout == ExpertLayout::PerExpert ? 9u : 2u);
      auto dir = tmp / (std::string(type) + "_" + to_string(layout));
      auto store = write_store(dir, moe_config(type), tensors);
      ModelSpec detected = spec_from_config(moe_config(type), nullptr, "test");
      detect_expert_layout(detected, *store);
      EXPECT_EQ(detected.moe.layout, layout) << type;
      for (int e = 0; e < 3; ++e) {
        ExpertWeights got = read_expert(detected, *store, 0, e);
        ExpertWeights want = experts[e];
        for (auto* v : {&want.gate, &want.up, &want.down})
          for (float& x : *v) x = bf16_to_float(float_to_bf16(x));  // stored as bf16
        expect_same(got, want);
      }
    }
  }
  ModelSpec mixtral = spec_from_config(moe_config("mixtral"), nullptr, "test");
  EXPECT_EQ(tensor_name(mixtral, TensorRole::ExpertUp, 0, 2), "model.layers.0.block_sparse_moe.experts.2.w3.weight");
  mixtral.moe.layout = ExpertLayout::FusedConcat;
  EXPECT_EQ(tensor_name(mixtral, TensorRole::Router, 0), "model.layers.0.mlp.gate.weight");
}

TEST(ArchLayout, ValidateStoreMessages) {
  test::TempDir tmp;
  json config = moe_config("qwen3_moe");
  ModelSpec spec = spec_from_config(config, nullptr, "test");
  auto all = [&](const std::string& drop, const std::string& reshape, bool extra) {
    std::vector<EncodedTensor> tensors;
    for (const ExpectedTensor& t : expected_tensors(spec)) {
      if (t.name == drop) continue;
      EncodedTensor e;
      e.decl = TensorDecl{t.name, DType::F32, t.shape};
      if (t.name == reshape) e.decl.shape.back() += 1;
      e.bytes.assign(e.decl.num_bytes(), 0);
      tensors.push_back(std::move(e));
    }
    if (extra) tensors.push_back(EncodedTensor{TensorDecl{"extra.weight", DType::F32, {2}}, std::vector<uint8_t>(8)});
    return tensors;
  };
  auto ok = write_store(tmp / "ok", config, all("", "", true));
  StoreValidation v = validate_store(spec, *ok);
  EXPECT_EQ(v.num_expected + 1, v.num_present);
  ASSERT_EQ(v.unused, std::vector<std::string>{"extra.weight"});
  EXPECT_NE(v.warnings.at(0).find("1 unused tensor(s)"), std::string::npos);
  auto missing = write_store(tmp / "missing", config, all("model.layers.0.mlp.experts.1.up_proj.weight", "", false));
  MOEFORGE_EXPECT_ERROR(validate_store(spec, *missing), "missing tensor 'model.layers.0.mlp.experts.1.up_proj.weight'");
  auto shape = write_store(tmp / "shape", config, all("", "model.layers.0.self_attn.q_proj.weight", false));
  MOEFORGE_EXPECT_ERROR(validate_store(spec, *shape),
                        "tensor 'model.layers.0.self_attn.q_proj.weight' has wrong shape; expected [32, 32], got [32, 33]");
}

}  // namespace
}  // namespace moeforge
