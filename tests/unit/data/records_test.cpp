// Tests of record reading: .txt per line and with a separator, JSONL text/chat/domain, gzip,
// bad records with file:line, strict mode.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <fstream>

#include "data/records.h"
#include "data/text_file.h"
#include "test_util.h"

namespace moeforge::data {
namespace {
using test::TempDir;
using test::write_text_file;

SourceSpec source(const std::filesystem::path& path, SourceFormat format) {
  SourceSpec s;
  s.path = path;
  s.format = format;
  s.domain = "dflt";
  return s;
}

TEST(Records, TextPerLineAndSeparator) {
  TempDir dir;
  write_text_file(dir / "a.txt", "first doc\n\nsecond doc\r\n  \nthird");
  auto records = read_records(source(dir / "a.txt", SourceFormat::Text), {});
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1].text, "second doc");
  EXPECT_EQ(records[1].line, 3u);
  EXPECT_EQ(records[2].line, 5u);
  EXPECT_EQ(records[0].domain, "dflt");

  write_text_file(dir / "b.txt", "one\nstill one\n===\ntwo\n===\n\n===\nthree\n");
  RecordOptions o;
  o.doc_sep = "===\n";
  auto docs = read_records(source(dir / "b.txt", SourceFormat::Text), o);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "one\nstill one\n");
  EXPECT_EQ(docs[1].text, "two\n");
  EXPECT_EQ(docs[1].line, 4u);
  EXPECT_EQ(docs[2].line, 8u);
}

TEST(Records, JsonlTextChatDomainAndGzip) {
  TempDir dir;
  std::string text =
      "{\"text\": \"hello\", \"domain\": \"code\", \"prompt\": \"p\"}\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n";
  gzFile gz = gzopen((dir / "c.jsonl.gz").c_str(), "wb");
  gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  gzclose(gz);
  auto records = read_records(source(dir / "c.jsonl.gz", SourceFormat::Jsonl), {});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind, Record::Kind::Text);
  EXPECT_EQ(records[0].text, "hello");
  EXPECT_EQ(records[0].domain, "code");
  EXPECT_EQ(records[0].prompt, "p");
  EXPECT_EQ(records[1].kind, Record::Kind::Chat);
  EXPECT_EQ(records[1].messages.size(), 2u);
  EXPECT_EQ(records[1].domain, "dflt");
  EXPECT_EQ(records[1].line, 2u);
}

// `text` as a zstd file of `frames` frames (what `cat a.zst b.zst` or pzstd produce), level 3.
void write_zstd(const std::filesystem::path& path, const std::string& text, size_t frames) {
  std::string out;
  const size_t step = (text.size() + frames - 1) / frames;
  for (size_t at = 0; at < text.size(); at += step) {
    const std::string part = text.substr(at, step);
    std::string frame(ZSTD_compressBound(part.size()), '\0');
    const size_t n = ZSTD_compress(frame.data(), frame.size(), part.data(), part.size(), 3);
    ASSERT_FALSE(ZSTD_isError(n));
    out.append(frame.data(), n);
  }
  std::ofstream(path, std::ios::binary) << out;
}

TEST(Records, ZstdFilesReadLikeTheirPlainText) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "{\"text\": \"line " + std::to_string(i) + " of a pretraining dump\", \"domain\": \"web\"}\n";
  ASSERT_GT(text.size(), 3u * 65536);  // several read chunks
  write_text_file(dir / "plain.jsonl", text);
  write_zstd(dir / "dump.jsonl.zst", text, 3);
  EXPECT_EQ(read_text_file(dir / "dump.jsonl.zst"), text);
  auto plain = read_records(source(dir / "plain.jsonl", SourceFormat::Jsonl), {});
  auto packed = read_records(source(dir / "dump.jsonl.zst", SourceFormat::Jsonl), {});
  ASSERT_EQ(packed.size(), 5000u);
  ASSERT_EQ(packed.size(), plain.size());
  for (size_t i = 0; i < plain.size(); i += 997) {
    EXPECT_EQ(packed[i].text, plain[i].text);
    EXPECT_EQ(packed[i].line, plain[i].line);
  }
  // A cut-off file is an error naming it, not a silently shorter corpus.
  std::ifstream in(dir / "dump.jsonl.zst", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir / "cut.jsonl.zst", std::ios::binary) << bytes.substr(0, bytes.size() - 7);
  MOEFORGE_EXPECT_ERROR(read_text_file(dir / "cut.jsonl.zst"), "cut.jsonl.zst': truncated zstd stream");
  std::ofstream(dir / "junk.txt.zst", std::ios::binary) << std::string("\x28\xb5\x2f\xfd garbage", 12);
  MOEFORGE_EXPECT_ERROR(read_text_file(dir / "junk.txt.zst"), "error reading '");
}

TEST(Records, BadRecordsCountedWithLinesAndStrict) {
  TempDir dir;
  write_text_file(dir / "bad.jsonl",
                  "{\"text\": \"ok\"}\n"
                  "{not json\n"
                  "{\"body\": \"no text field\"}\n"
                  "{\"text\": \"bad \xff utf8\"}\n"
                  "[1, 2]\n"
                  "{\"text\": 5}\n"
                  "{\"text\": \"ok again\"}\n");
  BadRecordLog bad;
  auto records = read_records(source(dir / "bad.jsonl", SourceFormat::Jsonl), {}, &bad);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].line, 7u);
  ASSERT_EQ(bad.count, 5u);
  EXPECT_EQ(bad.examples[0].line, 2u);
  EXPECT_EQ(bad.examples[0].reason, "invalid JSON");
  EXPECT_EQ(bad.examples[1].reason, "missing field 'text' (or 'messages')");
  EXPECT_EQ(bad.examples[2].reason, "invalid UTF-8 at byte 14");
  EXPECT_EQ(bad.examples[3].reason, "not a JSON object");
  EXPECT_EQ(bad.examples[4].reason, "field 'text' is not a string");
  EXPECT_NE(bad.examples[0].where().find("bad.jsonl:2"), std::string::npos);

  RecordOptions strict;
  strict.strict = true;
  MOEFORGE_EXPECT_ERROR(read_records(source(dir / "bad.jsonl", SourceFormat::Jsonl), strict), "bad.jsonl:2: bad record: invalid JSON");

  write_text_file(dir / "bad.txt", "fine\nnot \xc3\x28 fine\n");
  BadRecordLog text_bad;
  auto lines = read_records(source(dir / "bad.txt", SourceFormat::Text), {}, &text_bad);
  EXPECT_EQ(lines.size(), 1u);
  EXPECT_EQ(text_bad.count, 1u);
  EXPECT_EQ(text_bad.examples[0].line, 2u);
}

TEST(Records, Utf8Validation) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("caf\xc3\xa9 \xf0\x9f\x99\x82"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xc0\xaf"), 2u);          // overlong
  EXPECT_EQ(find_invalid_utf8("\xed\xa0\x80"), 0u);        // surrogate
  EXPECT_EQ(find_invalid_utf8("x\xe2\x82"), 1u);           // truncated
}

}  // namespace
}  // namespace moeforge::data
