// Unit tests for the tokenizer on tiny hand-written tokenizer.json files: byte-level BPE, merges in
// both formats, added tokens (lstrip/rstrip/single_word/special), byte_fallback, unk, NFC,
// templates, decoders and load errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "common/error.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::tokenizer {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

// A GPT-2 style byte-level tokenizer: ids 0..255 are the byte characters, then merged tokens.
Json byte_level_spec() {
  Json vocab = Json::object();
  const ByteLevelTable& table = byte_level_table();
  for (int b = 0; b < 256; ++b) vocab[std::string(table.encode(static_cast<uint8_t>(b)))] = b;
  int next = 256;
  for (const char* t : {"he", "ll", "hell", "hello", "\xC4\xA0h", "\xC4\xA0he"}) vocab[t] = next++;
  Json spec = {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", Json::array()},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", {"h e", "l l", "he ll", "hell o", "\xC4\xA0 h", "\xC4\xA0h e"}}}}};
  return spec;
}

Tokenizer load(const Json& spec) { return Tokenizer::from_json_string(spec.dump(), "test.json"); }

Json added_token(const std::string& content, bool special, bool lstrip = false, bool rstrip = false) {
  return {{"id", 0},          {"content", content}, {"single_word", false}, {"lstrip", lstrip},
          {"rstrip", rstrip}, {"normalized", false}, {"special", special}};
}

TEST(Tokenizer, ByteLevelBpeMergesByRank) {
  Tokenizer t = load(byte_level_spec());
  // "hello" merges h+e, l+l, he+ll, hell+o. In " hello" the pair Ġ+h (rank 4) loses to h+e
  // (rank 0), after which no merge joins Ġ and "he...", so the space stays its own token.
  EXPECT_EQ(t.encode("hello"), (Ids{259}));
  EXPECT_EQ(t.encode("hello hello"), (Ids{259, ' ', 259}));
  EXPECT_EQ(t.encode(" hx"), (Ids{260, 'x'}));
  EXPECT_EQ(t.encode("hex"), (Ids{256, 'x'}));
  EXPECT_EQ(t.decode(t.encode("hello hello")), "hello hello");
  EXPECT_EQ(t.encode(""), Ids{});
}

TEST(Tokenizer, MergePairsEqualMergeStrings) {
  Json spec = byte_level_spec();
  Json pairs = Json::array();
  for (const auto& m : spec["model"]["merges"]) {
    std::string s = m.get<std::string>();
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  Tokenizer a = load(spec);
  spec["model"]["merges"] = pairs;
  Tokenizer b = load(spec);
  for (const char* text : {"hello there", "hellohello hell", " h he hel"})
    EXPECT_EQ(a.encode(text), b.encode(text)) << text;
}

TEST(Tokenizer, ByteLevelHandlesAnyUtf8) {
  Tokenizer t = load(byte_level_spec());
  std::string text = "caf\xC3\xA9 \xF0\x9F\x98\x80 \xE6\x97\xA5";  // café 😀 日
  Ids ids = t.encode(text);
  EXPECT_EQ(ids.size(), text.size());  // one byte token each: no merges apply
  EXPECT_EQ(t.decode(ids), text);
  // A lone continuation byte decodes to U+FFFD, as HF's lossy conversion does.
  EXPECT_EQ(t.decode({0xA9}), "\xEF\xBF\xBD");
}

TEST(Tokenizer, IgnoreMergesUsesWholeWord) {
  Json spec = byte_level_spec();
  spec["model"]["vocab"]["hex"] = 300;
  Tokenizer without = load(spec);
  EXPECT_EQ(without.encode("hex"), (Ids{256, 'x'}));
  spec["model"]["ignore_merges"] = true;
  Tokenizer with = load(spec);
  EXPECT_EQ(with.encode("hex"), (Ids{300}));
}

TEST(Tokenizer, SpecialTokensSplitOutAndSkipOnDecode) {
  Json spec = byte_level_spec();
  spec["added_tokens"] = {added_token("<|end|>", true), added_token("<x>", false)};
  Tokenizer t = load(spec);
  // Ids come after the model vocab in file order, as HF assigns them.
  ASSERT_EQ(t.token_to_id("<|end|>"), std::optional<int32_t>(262));
  ASSERT_EQ(t.token_to_id("<x>"), std::optional<int32_t>(263));
  EXPECT_EQ(t.vocab_size(), 264u);
  EXPECT_EQ(t.encode("hello<|end|>hello"), (Ids{259, 262, 259}));
  EXPECT_EQ(t.encode("<|end|><x>"), (Ids{262, 263}));
  EXPECT_EQ(t.encode("<|end"), (Ids{'<', '|', 'e', 'n', 'd'}));
  EXPECT_EQ(t.decode({259, 262, 263}), "hello<|end|><x>");
  EXPECT_EQ(t.decode({259, 262, 263}, /*skip_special_tokens=*/true), "hello<x>");
  EXPECT_TRUE(t.is_special(262));
  EXPECT_FALSE(t.is_special(263));
}

TEST(Tokenizer, AddedTokenStripFlags) {
  Json spec = byte_level_spec();
  spec["added_tokens"] = {added_token("<L>", true, /*lstrip=*/true), added_token("<R>", true, false, /*rstrip=*/true)};
  Tokenizer t = load(spec);
  int32_t l = *t.token_to_id("<L>"), r = *t.token_to_id("<R>");
  int32_t space = ' ';  // byte tokens have the byte as id in this vocab
  EXPECT_EQ(t.encode("he  <L>"), (Ids{256, l}));         // spaces before <L> are absorbed
  EXPECT_EQ(t.encode("<R> \t he"), (Ids{r, 256}));       // whitespace after <R> is absorbed
  EXPECT_EQ(t.encode("he <R>"), (Ids{256, space, r}));   // <R> does not take spaces before it
}

TEST(Tokenizer, SingleWordTokensNeedWordBoundaries) {
  Json spec = byte_level_spec();
  Json token = added_token("ab", false);
  token["single_word"] = true;
  spec["added_tokens"] = {token};
  Tokenizer t = load(spec);
  int32_t ab = *t.token_to_id("ab");
  EXPECT_EQ(t.encode("ab"), (Ids{ab}));
  EXPECT_EQ(t.encode("-ab-"), (Ids{'-', ab, '-'}));
  EXPECT_EQ(t.encode("xab"), (Ids{'x', 'a', 'b'}));
}

// Llama 2 style: Prepend/Replace normalizer, byte_fallback, <unk>, TemplateProcessing with <s>.
Json sentencepiece_spec(bool byte_fallback) {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  int next = 3;
  if (byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      vocab[name] = next++;
    }
  }
  for (const char* t : {"\xE2\x96\x81", "a", "b", "c", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"})
    vocab[t] = next++;
  return {{"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"added_tokens", {added_token("<unk>", true), added_token("<s>", true), added_token("</s>", true)}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", "<unk>"},
            {"fuse_unk", true},
            {"byte_fallback", byte_fallback},
            {"vocab", vocab},
            {"merges", {"\xE2\x96\x81 a", "a b", "\xE2\x96\x81" "a b"}}}}};
}

TEST(Tokenizer, SentencePieceStyleWithByteFallback) {
  Tokenizer t = load(sentencepiece_spec(true));
  int32_t sp_ab = *t.token_to_id("\xE2\x96\x81" "ab"), c = *t.token_to_id("c");
  EXPECT_EQ(t.encode("ab c"), (Ids{1, sp_ab, *t.token_to_id("\xE2\x96\x81"), c}));
  EXPECT_EQ(t.encode("ab", /*add_special_tokens=*/false), (Ids{sp_ab}));
  EXPECT_EQ(t.bos_id(), std::optional<int32_t>(1));
  // 'é' is not in the vocab: it falls back to its two UTF-8 bytes <0xC3><0xA9>.
  Ids ids = t.encode("\xC3\xA9", false);
  EXPECT_EQ(ids, (Ids{*t.token_to_id("\xE2\x96\x81"), 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t.decode(ids), "\xC3\xA9");
  EXPECT_EQ(t.decode(t.encode("ab c ab"), true), "ab c ab");
  EXPECT_EQ(t.decode({3 + 0xC3}), "\xEF\xBF\xBD");  // an incomplete byte sequence
}

TEST(Tokenizer, UnknownCharactersFuseIntoOneUnk) {
  Tokenizer t = load(sentencepiece_spec(false));
  int32_t sp_a = *t.token_to_id("\xE2\x96\x81" "a");
  EXPECT_EQ(t.encode("axyz", false), (Ids{sp_a, 0}));
  EXPECT_EQ(t.encode("a<s>b", false), (Ids{sp_a, 1, *t.token_to_id("\xE2\x96\x81"), *t.token_to_id("b")}));
}

TEST(Tokenizer, NfcNormalizerComposes) {
  Json spec = byte_level_spec();
  Tokenizer plain = load(spec);
  spec["normalizer"] = {{"type", "NFC"}};
  Tokenizer nfc = load(spec);
  std::string composed = "\xC3\xA9", decomposed = "e\xCC\x81";
  EXPECT_EQ(nfc.encode(decomposed), nfc.encode(composed));
  EXPECT_NE(plain.encode(decomposed), plain.encode(composed));
  // Hangul jamo L+V+T compose into one syllable (U+AC01).
  EXPECT_EQ(nfc.decode(nfc.encode("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8")), "\xEA\xB0\x81");
}

TEST(Tokenizer, SplitPreTokenizerWithRegex) {
  Json spec = byte_level_spec();
  spec["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}{1,3}| ?\\p{L}+|\\s+"}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  Tokenizer t = load(spec);
  EXPECT_EQ(t.encode(" hello"), (Ids{' ', 259}));
  EXPECT_EQ(t.encode("hello123"), (Ids{259, '1', '2', '3'}));
  EXPECT_EQ(t.encode("12345").size(), 5u);
}

TEST(Tokenizer, RejectsInvalidUtf8Text) {
  Tokenizer t = load(byte_level_spec());
  MOEFORGE_EXPECT_ERROR(t.encode("ok \xFF"), "not valid UTF-8");
}

TEST(Tokenizer, LoadErrorsNameTheProblem) {
  MOEFORGE_EXPECT_ERROR(Tokenizer::from_json_string("{", "bad.json"), "bad.json: invalid JSON");
  Json spec = byte_level_spec();
  spec["model"]["type"] = "WordPiece";
  MOEFORGE_EXPECT_ERROR(load(spec), "unsupported model type 'WordPiece'");
  spec = byte_level_spec();
  spec["model"].erase("vocab");
  MOEFORGE_EXPECT_ERROR(load(spec), "test.json: model: missing 'vocab'");
  spec = byte_level_spec();
  spec["model"]["merges"].push_back("h zzz");
  MOEFORGE_EXPECT_ERROR(load(spec), "merge names unknown token 'zzz'");
  spec = byte_level_spec();
  spec["model"]["merges"].push_back("e h");
  MOEFORGE_EXPECT_ERROR(load(spec), "merged token 'eh' is not in the vocab");
  spec = byte_level_spec();
  spec["normalizer"] = {{"type", "NFKC"}};
  MOEFORGE_EXPECT_ERROR(load(spec), "unsupported normalizer type 'NFKC'");
  spec = byte_level_spec();
  spec["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  MOEFORGE_EXPECT_ERROR(load(spec), "invalid regex");
  spec = byte_level_spec();
  spec["decoder"] = {{"type", "WordPiece"}};
  MOEFORGE_EXPECT_ERROR(load(spec), "unsupported decoder type 'WordPiece'");
  MOEFORGE_EXPECT_ERROR(Tokenizer::from_file("/nonexistent/tokenizer.json"), "cannot open");
}

TEST(Tokenizer, MutatedFilesNeverCrash) {
  // A small fuzz loop: random byte edits must load or throw moeforge::Error, nothing else.
  std::string base = sentencepiece_spec(false).dump();
  std::mt19937 rng(7);
  int loaded = 0;
  for (int round = 0; round < 300; ++round) {
    std::string text = base;
    for (int k = 0; k < 3; ++k) text[rng() % text.size()] = "{}[]\":,0a-\\ "[rng() % 13];
    try {
      Tokenizer t = Tokenizer::from_json_string(text, "fuzz.json");
      t.decode(t.encode("ab c \xC3\xA9 <s>"));
      ++loaded;
    } catch (const moeforge::Error&) {
    }
  }
  EXPECT_GT(loaded, 0);
}

TEST(Tokenizer, RealLlama3MatchesKnownIds) {
  auto dir = test::shared_data_dir() / "tokenizers" / "llama3";
  if (!std::filesystem::exists(dir / "tokenizer.json")) GTEST_SKIP() << "no shared data";
  Tokenizer t = Tokenizer::from_directory(dir);
  EXPECT_EQ(t.encode("Hello world! <|endoftext|> <s> h\xC3\xA9llo  123456"),
            (Ids{9906, 1917, 0, 83739, 8862, 728, 428, 91, 29, 366, 82, 29, 305, 19010, 385, 220, 220, 4513, 10961}));
  EXPECT_EQ(t.bos_id(), std::optional<int32_t>(128000));
  EXPECT_EQ(t.vocab_size(), 128256u);
}

}  // namespace
}  // namespace moeforge::tokenizer
