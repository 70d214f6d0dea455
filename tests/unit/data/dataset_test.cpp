// Tests of Dataset: packing with EOS and masks (concat and per-document), chat assistant masks,
// domains, the validation split's determinism, the token cache, mixtures, resumable iteration.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "chat/chat_template.h"
#include "data/batch_iterator.h"
#include "data/dataset.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::data {
namespace {
using test::TempDir;
using test::write_text_file;

constexpr int32_t kEos = 0, kPad = 1;
int32_t byte_id(char c) { return 2 + static_cast<unsigned char>(c); }

// One token per byte: <eos> = 0, <pad> = 1, byte b = 2 + b (GPT-2 byte-level alphabet, no merges).
Tokenizer byte_tokenizer() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  vocab["<eos>"] = 0;
  vocab["<pad>"] = 1;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    std::string utf8;
    if (cp < 0x80) utf8 += static_cast<char>(cp);
    else utf8 += static_cast<char>(0xC0 | (cp >> 6)), utf8 += static_cast<char>(0x80 | (cp & 0x3F));
    vocab[utf8] = 2 + b;
  }
  nlohmann::ordered_json level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  nlohmann::ordered_json j = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::ordered_json::parse(
                           R"([{"id":0,"content":"<eos>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
                               {"id":1,"content":"<pad>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}])")},
      {"normalizer", nullptr},
      {"pre_tokenizer", level},
      {"post_processor", nullptr},
      {"decoder", level},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::ordered_json::array()}}}};
  return Tokenizer::from_json_string(j.dump(), "byte/tokenizer.json", R"({"eos_token": "<eos>", "pad_token": "<pad>"})");
}

DataOptions options(const TempDir& dir, int64_t block) {
  DataOptions o;
  o.block_size = block;
  o.validation_fraction = 0.0;
  o.shuffle_documents = false;
  o.cache_dir = dir / "cache";
  return o;
}

std::vector<int32_t> ids_of(const std::string& text) {
  std::vector<int32_t> out;
  for (char c : text) out.push_back(byte_id(c));
  return out;
}

TEST(Dataset, ConcatPackingWithEosAndPaddingMask) {
  TempDir dir;
  write_text_file(dir / "a.txt", "ab\ncde\nf\n");
  Dataset ds = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), options(dir, 4));
  ASSERT_EQ(ds.num_blocks(Split::Train), 3u);
  EXPECT_EQ(ds.num_blocks(Split::Validation), 0u);
  Block b0 = ds.block(Split::Train, 0), b1 = ds.block(Split::Train, 1), b2 = ds.block(Split::Train, 2);
  EXPECT_EQ(b0.ids, (std::vector<int32_t>{byte_id('a'), byte_id('b'), kEos, byte_id('c')}));
  EXPECT_EQ(b1.ids, (std::vector<int32_t>{byte_id('d'), byte_id('e'), kEos, byte_id('f')}));
  EXPECT_EQ(b2.ids, (std::vector<int32_t>{kEos, kPad, kPad, kPad}));
  EXPECT_EQ(b0.loss_mask, (std::vector<uint8_t>{1, 1, 1, 1}));
  EXPECT_EQ(b2.loss_mask, (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(b2.num_real, 1);
  EXPECT_EQ(ds.domains(), std::vector<std::string>{"a"});
  EXPECT_EQ(ds.eos_id(), kEos);
  EXPECT_EQ(ds.pad_id(), kPad);
}

TEST(Dataset, PerDocumentPacking) {
  TempDir dir;
  write_text_file(dir / "a.txt", "ab\nabcdefg\n");
  DataOptions o = options(dir, 4);
  o.packing = PackMode::PerDocument;
  Dataset ds = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), o);
  ASSERT_EQ(ds.num_blocks(Split::Train), 3u);
  EXPECT_EQ(ds.block(Split::Train, 0).ids, (std::vector<int32_t>{byte_id('a'), byte_id('b'), kEos, kPad}));
  EXPECT_EQ(ds.block(Split::Train, 0).loss_mask, (std::vector<uint8_t>{1, 1, 1, 0}));
  EXPECT_EQ(ds.block(Split::Train, 1).ids, ids_of("abcd"));
  EXPECT_EQ(ds.block(Split::Train, 2).ids, (std::vector<int32_t>{byte_id('e'), byte_id('f'), byte_id('g'), kEos}));
}

TEST(Dataset, ChatAssistantOnlyMask) {
  TempDir dir;
  write_text_file(dir / "chat.jsonl",
                  R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, )"
                  R"({"role": "user", "content": "and?"}, {"role": "assistant", "content": "ok"}]})"
                  "\n");
  DataOptions o = options(dir, 256);
  o.chat_template = std::make_shared<const chat::ChatTemplate>(chat::ChatTemplate::from_string(
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"));
  Dataset ds = Dataset::open((dir / "chat.jsonl").string(), byte_tokenizer(), o);
  Block b = ds.block(Split::Train, 0);
  std::string trained, full;
  for (int32_t t = 0; t < b.num_real; ++t) {
    char c = b.ids[t] >= 2 ? static_cast<char>(b.ids[t] - 2) : '#';
    full += c;
    if (b.loss_mask[t]) trained += c;
  }
  EXPECT_EQ(full, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
                  "<|im_start|>user\nand?<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n#");
  EXPECT_EQ(trained, "yo<|im_end|>\nok<|im_end|>\n");  // the EOS after a masked record is not a target
  EXPECT_EQ(ds.report().domains[0].train_targets, trained.size());

  // Without a template, chat records are bad records: the error gives the reason.
  DataOptions none = options(dir, 16);
  none.cache_dir = dir / "cache2";
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "chat.jsonl").string(), byte_tokenizer(), none),
                        "1 of 2 records (50%) are bad, above --max-bad-fraction 1%");
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "chat.jsonl").string(), byte_tokenizer(), none),
                        "chat.jsonl:1: chat record but the tokenizer has no chat template");
  none.records.strict = true;
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "chat.jsonl").string(), byte_tokenizer(), none),
                        "chat.jsonl:1: bad record: chat record but the tokenizer has no chat template");
}

TEST(Dataset, BadRecordsAreWarnedAboutAndStopTheRunAboveTheThreshold) {
  TempDir dir;
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "{\"text\": \"document number " + std::to_string(i) + "\"}\n";
  write_text_file(dir / "one_bad.jsonl", lines + "{not json\n");
  std::string five;
  for (int i = 0; i < 100; ++i) five += "{\"text\": \"doc " + std::to_string(i) + "\"}\n";
  for (int i = 0; i < 5; ++i) five += "{\"txt\": \"wrong field\"}\n";
  write_text_file(dir / "five_bad.jsonl", five);
  DataOptions o = options(dir, 32);
  // 1 of 201 (0.5 %): skipped with a warning that names it.
  testing::internal::CaptureStderr();
  Dataset ok = Dataset::open((dir / "one_bad.jsonl").string(), byte_tokenizer(), o);
  const std::string warned = testing::internal::GetCapturedStderr();
  EXPECT_NE(warned.find("skipped 1 of 201 records (0.498%): "), std::string::npos) << warned;
  EXPECT_NE(warned.find("one_bad.jsonl:201: "), std::string::npos) << warned;
  EXPECT_EQ(ok.report().bad_records.count, 1u);
  testing::internal::CaptureStderr();
  Dataset again = Dataset::open((dir / "one_bad.jsonl").string(), byte_tokenizer(), o);  // a second phase: said once
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(again.report().bad_records.count, 1u);
  // 5 of 105 (4.8 %): above the default 1 %, an error naming the first few.
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "five_bad.jsonl").string(), byte_tokenizer(), o),
                        "5 of 105 records (4.76%) are bad, above --max-bad-fraction 1%: ");
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "five_bad.jsonl").string(), byte_tokenizer(), o), "five_bad.jsonl:101: ");
  o.max_bad_fraction = 0.05;
  testing::internal::CaptureStderr();
  Dataset tolerated = Dataset::open((dir / "five_bad.jsonl").string(), byte_tokenizer(), o);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("skipped 5 of 105 records"), std::string::npos);
  write_text_file(dir / "all_bad.jsonl", "{\"txt\": 1}\n{\"txt\": 2}\n");
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "all_bad.jsonl").string(), byte_tokenizer(), o), "': all 2 records are bad: ");
  o.max_bad_fraction = -1;
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "five_bad.jsonl").string(), byte_tokenizer(), o), "--max-bad-fraction must be >= 0");
}

TEST(Dataset, DomainsArePerBlockAndReported) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 6; ++i) text += std::string("{\"text\": \"") + (i % 2 ? "xxxx" : "yyyy") + "\", \"domain\": \"" + (i % 2 ? "x" : "y") + "\"}\n";
  text += "{\"text\": \"zz\"}\n";  // no domain field: the file's stem
  write_text_file(dir / "mixed.jsonl", text);
  Dataset ds = Dataset::open((dir / "mixed.jsonl").string(), byte_tokenizer(), options(dir, 5));
  EXPECT_EQ(ds.domains(), (std::vector<std::string>{"mixed", "x", "y"}));
  for (size_t i = 0; i < ds.num_blocks(Split::Train); ++i) {
    Block b = ds.block(Split::Train, i);
    char expected = ds.domains()[b.domain] == "x" ? 'x' : ds.domains()[b.domain] == "y" ? 'y' : 'z';
    for (int32_t t = 0; t < b.num_real; ++t)
      if (b.ids[t] != kEos) EXPECT_EQ(b.ids[t], byte_id(expected));
  }
  const DataReport& r = ds.report();
  EXPECT_EQ(r.domains[1].train_docs, 3u);
  EXPECT_EQ(r.domains[1].train_tokens, 15u);
  EXPECT_EQ(r.domains[1].train_blocks, 3u);
}

TEST(Dataset, ValidationSplitIsDeterministicBySeed) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "doc" + std::to_string(100 + i) + "\n";
  write_text_file(dir / "a.txt", text);
  auto validation_docs = [&](uint64_t seed, const std::string& cache) {
    DataOptions o = options(dir, 7);
    o.validation_fraction = 0.25;
    o.seed = seed;
    o.packing = PackMode::PerDocument;
    o.cache_dir = dir / cache;
    Dataset ds = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), o);
    EXPECT_EQ(ds.num_blocks(Split::Validation), 10u);
    EXPECT_EQ(ds.num_blocks(Split::Train), 30u);
    std::set<std::vector<int32_t>> docs;
    for (size_t i = 0; i < ds.num_blocks(Split::Validation); ++i) docs.insert(ds.block(Split::Validation, i).ids);
    return docs;
  };
  auto a = validation_docs(1, "c1");
  EXPECT_EQ(a, validation_docs(1, "c2"));  // fresh cache, same choice
  EXPECT_EQ(a, validation_docs(1, "c1"));  // cached, same choice
  EXPECT_NE(a, validation_docs(2, "c1"));
}

TEST(Dataset, DocumentShuffleDoesNotDependOnWhereTheFileLives) {
  // The same file and seed in two directories (two clones, two machines) give the same training
  // order; a different seed gives another.
  TempDir dir;
  std::string text;
  for (int i = 0; i < 40; ++i) text += "doc" + std::to_string(100 + i) + "\n";
  std::filesystem::create_directories(dir / "here");
  std::filesystem::create_directories(dir / "there" / "deeper");
  write_text_file(dir / "here" / "a.txt", text);
  write_text_file(dir / "there" / "deeper" / "a.txt", text);
  auto train_order = [&](const std::filesystem::path& file, uint64_t seed, bool shuffle = true) {
    DataOptions o = options(dir, 7);
    o.shuffle_documents = shuffle;
    o.seed = seed;
    o.packing = PackMode::PerDocument;
    Dataset ds = Dataset::open(file.string(), byte_tokenizer(), o);
    std::vector<std::vector<int32_t>> blocks;
    for (size_t i = 0; i < ds.num_blocks(Split::Train); ++i) blocks.push_back(ds.block(Split::Train, i).ids);
    return blocks;
  };
  auto here = train_order(dir / "here" / "a.txt", 1);
  ASSERT_EQ(here.size(), 40u);
  EXPECT_EQ(here, train_order(dir / "there" / "deeper" / "a.txt", 1));
  EXPECT_NE(here, train_order(dir / "here" / "a.txt", 2));
  EXPECT_NE(here, train_order(dir / "here" / "a.txt", 1, /*shuffle=*/false)) << "the documents were not shuffled";
}

TEST(Dataset, TokenCacheIsReused) {
  TempDir dir;
  write_text_file(dir / "a.txt", "hello\nworld\n");
  Dataset first = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), options(dir, 4));
  EXPECT_FALSE(first.report().sources[0].cached);
  Dataset second = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), options(dir, 4));
  EXPECT_TRUE(second.report().sources[0].cached);
  EXPECT_EQ(first.block(Split::Train, 1).ids, second.block(Split::Train, 1).ids);
  write_text_file(dir / "a.txt", "changed\n");  // new file hash -> new cache entry
  Dataset third = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), options(dir, 4));
  EXPECT_FALSE(third.report().sources[0].cached);
  EXPECT_EQ(third.block(Split::Train, 0).ids, ids_of("chan"));
}

TEST(Dataset, MixtureProportions) {
  TempDir dir;
  std::string big, small;
  for (int i = 0; i < 90; ++i) big += "bbb\n";  // 90 blocks of 4 tokens
  for (int i = 0; i < 10; ++i) small += "sss\n";  // 10 blocks
  write_text_file(dir / "big.txt", big);
  write_text_file(dir / "small.txt", small);
  std::string spec = (dir / "big.txt").string() + ":1," + (dir / "small.txt").string() + ":1";
  Dataset ds = Dataset::open(spec, byte_tokenizer(), options(dir, 4));
  ASSERT_EQ(ds.num_blocks(Split::Train), 100u);
  EXPECT_DOUBLE_EQ(ds.report().entry_share[0], 0.5);
  std::set<uint32_t> big_seen;
  for (uint64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<uint32_t> order = ds.epoch_order(Split::Train, epoch, 3);
    ASSERT_EQ(order.size(), 100u);
    std::map<int32_t, int> per_entry;
    std::set<uint32_t> big_this_epoch;
    for (uint32_t b : order) {
      int32_t entry = ds.block(Split::Train, b).entry;
      ++per_entry[entry];
      if (entry == 0) big_this_epoch.insert(b);
    }
    EXPECT_EQ(per_entry[0], 50);
    EXPECT_EQ(per_entry[1], 50);                 // the small file repeats 5 times
    if (epoch == 0) EXPECT_EQ(big_this_epoch.size(), 50u);  // the big one is subsampled without repeats ...
    big_seen.insert(big_this_epoch.begin(), big_this_epoch.end());
  }
  EXPECT_EQ(big_seen.size(), 90u);               // ... and resumes where it stopped next epoch
  EXPECT_EQ(ds.epoch_order(Split::Train, 1, 3), ds.epoch_order(Split::Train, 1, 3));
}

TEST(Dataset, ResumableIteration) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 23; ++i) text += "doc" + std::to_string(i) + "\n";
  write_text_file(dir / "a.txt", text);
  Dataset ds = Dataset::open((dir / "a.txt").string(), byte_tokenizer(), options(dir, 6));
  IteratorOptions io;
  io.batch_size = 4;
  io.seed = 9;
  BatchIterator original(ds, Split::Train, io);
  Batch batch;
  for (int i = 0; i < 7; ++i) original.next(batch);  // crosses an epoch boundary
  Position saved = original.position();
  EXPECT_GE(saved.epoch, 1u);
  std::vector<Batch> expected(5);
  for (auto& b : expected) ASSERT_TRUE(original.next(b));

  BatchIterator resumed(ds, Split::Train, io);
  resumed.seek(Position::from_json(saved.to_json()));
  for (const auto& want : expected) {
    Batch got;
    ASSERT_TRUE(resumed.next(got));
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.loss_mask, want.loss_mask);
    EXPECT_EQ(got.block_indices, want.block_indices);
  }
  MOEFORGE_EXPECT_ERROR(resumed.seek({0, 1000}), "past the end of the epoch");

  // One pass over validation-style iteration: every block once, last batch short.
  IteratorOptions once = io;
  once.loop = false;
  BatchIterator pass(ds, Split::Train, once);
  size_t rows = 0;
  std::set<uint32_t> seen;
  while (pass.next(batch)) {
    rows += static_cast<size_t>(batch.batch_size);
    seen.insert(batch.block_indices.begin(), batch.block_indices.end());
  }
  EXPECT_EQ(rows, ds.num_blocks(Split::Train));
  EXPECT_EQ(seen.size(), ds.num_blocks(Split::Train));
}

TEST(Dataset, OptionErrors) {
  TempDir dir;
  write_text_file(dir / "a.txt", "x\n");
  DataOptions o = options(dir, 1);
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "a.txt").string(), byte_tokenizer(), o), "block size must be at least 2");
  o.block_size = 8;
  o.validation_fraction = 1.0;
  MOEFORGE_EXPECT_ERROR(Dataset::open((dir / "a.txt").string(), byte_tokenizer(), o), "validation fraction");
}

}  // namespace
}  // namespace moeforge::data
