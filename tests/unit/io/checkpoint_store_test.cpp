// Model directories: single file, sharded with an index, bad indexes; and the streaming writer.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "test_util.h"

namespace moeforge {
namespace {
namespace fs = std::filesystem;

std::string pattern_bytes(size_t n, uint8_t seed) {
  std::string bytes(n, '\0');
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>((i * 31 + seed) & 0xFF);
  return bytes;
}

std::string view_string(const StoredTensor& t) {
  ByteView v = t.bytes();
  return std::string(reinterpret_cast<const char*>(v.data), v.size);
}

TEST(CheckpointWriter, WritesShardedCheckpointThatReadsBack) {
  test::TempDir dir;
  std::vector<TensorDecl> decls;
  for (int i = 0; i < 10; ++i) decls.push_back({"layer." + std::to_string(i) + ".w", DType::F32, {4, 8}});  // 128 B each
  WriterOptions options;
  options.max_shard_bytes = 300;  // two tensors per shard
  options.metadata = {{"format", "pt"}, {"source", "test"}};
  {
    CheckpointWriter writer(dir / "out", decls, options);
    // any order
    for (int i = 9; i >= 0; --i) {
      std::string bytes = pattern_bytes(128, static_cast<uint8_t>(i));
      writer.write("layer." + std::to_string(i) + ".w",
                   ByteView{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    }
    writer.add_file("config.json", R"({"model_type":"llama"})");
    EXPECT_FALSE(fs::exists(dir / "out"));  // nothing visible before commit
    writer.commit();
  }
  ASSERT_TRUE(fs::exists(dir / "out/model.safetensors.index.json"));
  ASSERT_TRUE(fs::exists(dir / "out/model-00005-of-00005.safetensors"));
  auto index = read_json_file(dir / "out/model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], 1280);
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00001-of-00005.safetensors");
  auto store = CheckpointStore::open(dir / "out");
  EXPECT_EQ(store->tensor_names().size(), 10u);
  EXPECT_EQ(store->shard_files().size(), 5u);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(view_string(store->tensor("layer." + std::to_string(i) + ".w")), pattern_bytes(128, static_cast<uint8_t>(i)));
  EXPECT_EQ(store->metadata().at("source"), "test");
  EXPECT_EQ(store->read_json("config.json")["model_type"], "llama");
  MOEFORGE_EXPECT_ERROR(store->tensor("nope"), "missing tensor 'nope'");
  // the temporary directory is gone
  for (const auto& entry : fs::directory_iterator(dir.path())) EXPECT_EQ(entry.path().filename(), "out");
}

TEST(CheckpointWriter, SingleShardUsesPlainName) {
  test::TempDir dir;
  CheckpointWriter writer(dir / "m", {{"x", DType::BF16, {2}}});
  writer.write_streamed("x", [sent = false](uint8_t* buffer, size_t capacity) mutable -> size_t {
    if (sent) return 0;
    sent = true;
    std::memcpy(buffer, "\x80\x3f\x00\x40", 4);
    return 4;
  });
  writer.commit();
  EXPECT_TRUE(fs::exists(dir / "m/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "m/model.safetensors.index.json"));
  auto store = CheckpointStore::open(dir / "m");
  EXPECT_EQ(view_string(store->tensor("x")), std::string("\x80\x3f\x00\x40", 4));
}

TEST(CheckpointWriter, KernelCopyFillsATensorFromFileRanges) {
  test::TempDir dir;
  const std::string source = pattern_bytes(64, 7);
  { std::ofstream(dir / "src.bin", std::ios::binary) << source; }
  const int fd = ::open((dir / "src.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  CheckpointWriter writer(dir / "m", {{"x", DType::U8, {48}}});
  // two ranges of the source, in the order they make the tensor: bytes 16..47, then 0..15
  const bool kernel = writer.copy_range_into("x", fd, 16, 32, 0) && writer.copy_range_into("x", fd, 0, 16, 32);
  ::close(fd);
  if (!kernel) GTEST_SKIP() << "copy_file_range is not available on this file system";
  MOEFORGE_EXPECT_ERROR(writer.mark_copied("x", 40), "received 40 of its declared 48 bytes");
  writer.mark_copied("x", 48);
  writer.commit();
  auto store = CheckpointStore::open(dir / "m");
  ByteView got = store->tensor("x").bytes();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data), got.size), source.substr(16, 32) + source.substr(0, 16));
}

TEST(CheckpointWriter, AbandonedWriterLeavesNothingBehind) {
  test::TempDir dir;
  {
    CheckpointWriter writer(dir / "m", {{"x", DType::F32, {2}}, {"y", DType::F32, {1}}});
    std::string bytes(8, '\0');
    writer.write("x", ByteView{reinterpret_cast<const uint8_t*>(bytes.data()), 8});
    MOEFORGE_EXPECT_ERROR(writer.commit(), "tensor 'y' was declared but never written");
    MOEFORGE_EXPECT_ERROR(writer.write("x", ByteView{reinterpret_cast<const uint8_t*>(bytes.data()), 8}), "written twice");
    MOEFORGE_EXPECT_ERROR(writer.write("y", ByteView{reinterpret_cast<const uint8_t*>(bytes.data()), 8}), "has 8 bytes");
    MOEFORGE_EXPECT_ERROR(writer.write("z", ByteView{}), "tensor 'z' was not declared");
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(CheckpointWriter, RefusesExistingOutputAndDuplicateNames) {
  test::TempDir dir;
  fs::create_directory(dir / "exists");
  MOEFORGE_EXPECT_ERROR(CheckpointWriter(dir / "exists", {{"x", DType::F32, {1}}}), "output already exists");
  MOEFORGE_EXPECT_ERROR(CheckpointWriter(dir / "new", {{"x", DType::F32, {1}}, {"x", DType::F32, {1}}}), "declared twice");
}

TEST(CheckpointStore, RejectsIndexEscapingTheDirectory) {
  test::TempDir dir;
  fs::create_directory(dir / "m");
  test::write_text_file(dir / "m/model.safetensors.index.json",
                        R"({"weight_map":{"w":"../evil.safetensors"}})");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "escapes the model directory");
  test::write_text_file(dir / "m/model.safetensors.index.json", R"({"weight_map":{"w":"/etc/passwd"}})");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "escapes the model directory");
  test::write_text_file(dir / "m/model.safetensors.index.json", R"({"weight_map":{"w":"missing.safetensors"}})");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "shard 'missing.safetensors' named in the index does not exist");
  test::write_text_file(dir / "m/model.safetensors.index.json", R"({"weight_map":[1]})");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "missing 'weight_map' object");
  test::write_text_file(dir / "m/model.safetensors.index.json", R"({"weight_map":)");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "model.safetensors.index.json: invalid JSON");
}

TEST(CheckpointStore, IndexNamingTensorAbsentFromShard) {
  test::TempDir dir;
  fs::create_directory(dir / "m");
  test::write_text_file(dir / "m/a.safetensors", serialize_safetensors({{TensorDecl{"x", DType::U8, {1}}, "A"}}));
  test::write_text_file(dir / "m/model.safetensors.index.json",
                        R"({"weight_map":{"x":"a.safetensors","ghost":"a.safetensors"}})");
  auto store = CheckpointStore::open(dir / "m");
  EXPECT_EQ(view_string(store->tensor("x")), "A");
  MOEFORGE_EXPECT_ERROR(store->tensor("ghost"), "tensor 'ghost' is listed in model.safetensors.index.json but not in this shard");
}

TEST(CheckpointStore, UnindexedDirectoryWithDuplicateTensors) {
  test::TempDir dir;
  fs::create_directory(dir / "m");
  test::write_text_file(dir / "m/a.safetensors", serialize_safetensors({{TensorDecl{"x", DType::U8, {1}}, "A"}}));
  test::write_text_file(dir / "m/b.safetensors", serialize_safetensors({{TensorDecl{"x", DType::U8, {1}}, "B"}}));
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "m"), "tensor 'x' also appears in a.safetensors");
  fs::create_directory(dir / "empty");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "empty"), "no model.safetensors");
  MOEFORGE_EXPECT_ERROR(CheckpointStore::open(dir / "nothing"), "no such file or directory");
}

}  // namespace
}  // namespace moeforge
