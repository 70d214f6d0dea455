// Tests of --data spec parsing: files, directories, weighted lists, mixture files, errors.
#include <gtest/gtest.h>

#include "data/data_spec.h"
#include "test_util.h"

namespace moeforge::data {
namespace {
using test::TempDir;
using test::write_text_file;

TEST(DataSpec, FilesDirectoriesAndWeights) {
  TempDir dir;
  write_text_file(dir / "a.jsonl", "{\"text\": \"x\"}\n");
  write_text_file(dir / "b.txt", "x\n");
  std::filesystem::create_directories(dir / "sub" / "deep");
  write_text_file(dir / "sub" / "deep" / "c.jsonl.gz", "");
  write_text_file(dir / "sub" / "deep" / "d.txt.zst", "");
  write_text_file(dir / "sub" / "notes.md", "ignored");

  auto one = parse_data_spec((dir / "a.jsonl").string());
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].format, SourceFormat::Jsonl);
  EXPECT_EQ(one[0].domain, "a");
  EXPECT_LT(one[0].weight, 0);

  auto sub = parse_data_spec((dir / "sub").string());
  ASSERT_EQ(sub.size(), 2u);
  EXPECT_EQ(sub[0].path.filename(), "c.jsonl.gz");
  EXPECT_EQ(sub[0].domain, "c");
  EXPECT_EQ(sub[1].path.filename(), "d.txt.zst");
  EXPECT_EQ(sub[1].format, SourceFormat::Text);
  EXPECT_EQ(sub[1].domain, "d");

  auto mix = parse_data_spec((dir / "a.jsonl").string() + ":0.4," + (dir / "b.txt").string() + ":0.6");
  ASSERT_EQ(mix.size(), 2u);
  EXPECT_DOUBLE_EQ(mix[0].weight, 0.4);
  EXPECT_DOUBLE_EQ(mix[1].weight, 0.6);
  EXPECT_EQ(mix[1].format, SourceFormat::Text);
  EXPECT_EQ(mix[0].entry, (dir / "a.jsonl").string());
}

TEST(DataSpec, ResolveMakesEveryEntryAbsoluteAndKeepsWeights) {
  TempDir dir;
  write_text_file(dir / "a.jsonl", "{\"text\": \"x\"}\n");
  write_text_file(dir / "odd:0.5.txt", "x\n");  // a file whose name ends like a weight
  const std::string d = dir.path().string();
  EXPECT_EQ(resolve_data_spec(dir.path(), "a.jsonl"), d + "/a.jsonl");
  EXPECT_EQ(resolve_data_spec(dir.path(), "./a.jsonl:0.4,sub/../b.txt:2"), d + "/a.jsonl:0.4," + d + "/b.txt:2");
  EXPECT_EQ(resolve_data_spec(dir.path(), "odd:0.5.txt"), d + "/odd:0.5.txt");
  EXPECT_EQ(resolve_data_spec(dir.path(), "/abs/x.txt:1e-1"), "/abs/x.txt:1e-1");
  // The resolved spec parses to the same files as the relative one did from base_dir.
  auto parsed = parse_data_spec(resolve_data_spec(dir.path(), "a.jsonl:1,odd:0.5.txt:3"));
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1].path, dir / "odd:0.5.txt");
  EXPECT_DOUBLE_EQ(parsed[1].weight, 3.0);
}

TEST(DataSpec, MixtureFile) {
  TempDir dir;
  write_text_file(dir / "a.jsonl", "{\"text\": \"x\"}\n");
  write_text_file(dir / "b.txt", "x\n");
  write_text_file(dir / "mix.json",
                  R"({"sources": [{"path": "a.jsonl", "weight": 1, "domain": "code"}, {"path": "b.txt", "weight": 3}]})");
  auto mix = parse_data_spec((dir / "mix.json").string());
  ASSERT_EQ(mix.size(), 2u);
  EXPECT_EQ(mix[0].domain, "code");
  EXPECT_DOUBLE_EQ(mix[1].weight, 3.0);
  write_text_file(dir / "short.json", R"({"a.jsonl": 0.25, "b.txt": 0.75})");
  auto short_form = parse_data_spec((dir / "short.json").string());
  ASSERT_EQ(short_form.size(), 2u);
  EXPECT_DOUBLE_EQ(short_form[0].weight, 0.25);
}

TEST(DataSpec, Errors) {
  TempDir dir;
  write_text_file(dir / "a.jsonl", "");
  write_text_file(dir / "b.csv", "");
  MOEFORGE_EXPECT_ERROR(parse_data_spec((dir / "missing.jsonl").string()), "no such file");
  MOEFORGE_EXPECT_ERROR(parse_data_spec((dir / "b.csv").string()), "unsupported file type");
  MOEFORGE_EXPECT_ERROR(parse_data_spec((dir / "a.jsonl").string() + ":-1"), "positive");
  MOEFORGE_EXPECT_ERROR(parse_data_spec((dir / "a.jsonl").string() + ":0.5," + (dir / "a.jsonl").string()),
                        "give a weight to every entry");
  std::filesystem::create_directories(dir / "empty");
  MOEFORGE_EXPECT_ERROR(parse_data_spec((dir / "empty").string()), "holds no .txt, .jsonl or .parquet");
}

}  // namespace
}  // namespace moeforge::data
