// Reading and validating single safetensors files: every header defect is rejected by message.
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "io/checkpoint_writer.h"
#include "io/safetensors_file.h"
#include "test_util.h"

namespace moeforge {
namespace {

std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

std::string floats(std::initializer_list<float> values) {
  std::string bytes(values.size() * 4, '\0');
  std::memcpy(bytes.data(), values.begin(), bytes.size());
  return bytes;
}

TEST(SafetensorsFile, ReadsTensorsAndMetadataZeroCopy) {
  test::TempDir dir;
  std::string blob = serialize_safetensors(
      {{TensorDecl{"a", DType::F32, {2, 2}}, floats({1, 2, 3, 4})},
       {TensorDecl{"b", DType::BF16, {3}}, std::string("\x80\x3f\x00\x40\x40\x40", 6)}},
      {{"format", "pt"}});
  test::write_text_file(dir / "m.safetensors", blob);
  auto file = SafetensorsFile::open(dir / "m.safetensors");
  ASSERT_EQ(file->tensors().size(), 2u);
  const TensorInfo* a = file->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a->dtype, DType::F32);
  ByteView view = file->bytes(*a);
  ASSERT_EQ(view.size, 16u);
  float values[4];
  std::memcpy(values, view.data, 16);
  EXPECT_FLOAT_EQ(values[3], 4.0f);
  // zero-copy: the view points into the mapping
  EXPECT_GE(view.data, file->mapping().data());
  EXPECT_LT(view.data, file->mapping().data() + file->mapping().size());
  const TensorInfo* b = file->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::BF16);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->find("missing"), nullptr);
}

TEST(SafetensorsFile, AcceptsEveryDtypeAsRawBytes) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}) {
    DType dtype = *parse_dtype(name);
    std::string data(dtype_size(dtype) * 3, '\x01');
    std::string header = std::string(R"({"t":{"dtype":")") + name + R"(","shape":[3],"data_offsets":[0,)" +
                         std::to_string(data.size()) + "]}}";
    test::TempDir dir;
    test::write_text_file(dir / "x.safetensors", raw_file(header, data));
    auto file = SafetensorsFile::open(dir / "x.safetensors");
    EXPECT_EQ(dtype_name(file->tensors()[0].dtype), name);
    EXPECT_EQ(file->bytes(file->tensors()[0]).size, data.size());
  }
}

struct BadHeaderCase {
  std::string header;
  std::string data;
  std::string message;
};

TEST(SafetensorsFile, RejectsEachHeaderDefectByMessage) {
  const std::vector<BadHeaderCase> cases = {
      {"{not json", "", "header is not valid JSON"},
      {"[1,2]", "", "header is not a JSON object"},
      {R"({"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "x", "tensor 't': unsupported dtype 'Q4'"},
      {R"({"t":{"shape":[1],"data_offsets":[0,4]}})", "xxxx", "tensor 't': missing or non-string 'dtype'"},
      {R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", "xxxx", "tensor 't': missing or non-array 'shape'"},
      {R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx", "negative dimension"},
      {R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "xxxx", "'data_offsets' must be two"},
      {R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "xxxx", "end before they begin"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "xxxx", "tensor 't': byte count 4 does not match shape [2] x F32 (8 bytes)"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "xxxx", "tensor 't': data_offsets [0, 8] run past the end"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, 'x'), "tensor 'b' overlaps tensor 'a'"},
      {R"({"__metadata__":{"k":1}})", "", "__metadata__ value for 'k' is not a string"},
      {R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", "xxxx", "is too large"},
  };
  for (const auto& c : cases) {
    test::TempDir dir;
    test::write_text_file(dir / "bad.safetensors", raw_file(c.header, c.data));
    MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "bad.safetensors"), c.message);
    MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "bad.safetensors"), "bad.safetensors");
  }
}

TEST(SafetensorsFile, RejectsTruncatedAndOversizedHeaders) {
  test::TempDir dir;
  test::write_text_file(dir / "short.safetensors", "abc");
  MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "short.safetensors"), "too short for a safetensors header");
  std::string huge_length(8, '\0');
  huge_length[0] = '\x10';
  test::write_text_file(dir / "len.safetensors", huge_length + "{}");
  MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "len.safetensors"), "header length 16 exceeds the file size (10 bytes)");
  std::string capped(8, '\0');
  capped[4] = '\x01';  // 2^32 bytes
  test::write_text_file(dir / "cap.safetensors", capped);
  MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "cap.safetensors"), "-byte limit");
  MOEFORGE_EXPECT_ERROR(SafetensorsFile::open(dir / "absent.safetensors"), "absent.safetensors: cannot open");
}

TEST(SafetensorsFile, EmptyTensorsNeverOverlap) {
  test::TempDir dir;
  std::string header = R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  test::write_text_file(dir / "e.safetensors", raw_file(header, "abcd"));
  auto file = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_EQ(file->tensors().size(), 2u);
}

TEST(DType, HalfPrecisionConversionsRoundTrip) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_FLOAT_EQ(bf16_to_float(0x4040), 3.0f);
  EXPECT_EQ(float_to_fp16(1.0f), 0x3C00);
  EXPECT_FLOAT_EQ(fp16_to_float(0xC000), -2.0f);
  EXPECT_FLOAT_EQ(fp16_to_float(0x0001), 5.9604645e-08f);  // smallest subnormal
  EXPECT_EQ(float_to_fp16(5.9604645e-08f), 0x0001);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(float_to_fp16(1e6f), 0x7C00);
  for (uint32_t h = 0; h < 0x7C00; h += 7) EXPECT_EQ(float_to_fp16(fp16_to_float(static_cast<uint16_t>(h))), h);
  // bf16 rounds to nearest even
  EXPECT_EQ(float_to_bf16(bf16_to_float(0x3F80) + 1.0f / 512), 0x3F80);
}

}  // namespace
}  // namespace moeforge
