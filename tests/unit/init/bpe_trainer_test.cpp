// Tests of byte-level BPE training: GPT-2 pre-tokenisation, merges in frequency order, the
// vocabulary layout (specials, 256 bytes, merges), determinism, and loading by our tokenizer.
#include <gtest/gtest.h>

#include "init/bpe_trainer.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::init {
namespace {

TEST(BpeTrainer, Gpt2PreTokenizer) {
  EXPECT_EQ(gpt2_split("Hello world's  end 42!\n"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", " end", " 42", "!", "\n"}));
  EXPECT_EQ(gpt2_pre_tokenize(" hi"), std::vector<std::string>{"\xC4\xA0hi"});  // "Ġhi"
  EXPECT_EQ(byte_level_encode("\n"), "\xC4\x8A");                                  // "Ċ"
}

TEST(BpeTrainer, MergesMostFrequentPairsFirst) {
  BpeTrainOptions o;
  o.special_tokens = {"<eos>"};
  o.bos_token = o.eos_token = "<eos>";
  o.pad_token = "";
  o.vocab_size = 1 + 256 + 3;
  std::vector<std::string> texts = {"aaab aaab aaab abab", "ab ab"};
  BpeModelData m = train_bpe(texts, o);
  ASSERT_EQ(m.vocab.size(), 260u);
  EXPECT_EQ(m.vocab[0], "<eos>");
  ASSERT_EQ(m.merges.size(), 3u);
  // Pairs: (a,b) occurs 3 ("aaab"x... ) + 2 ("abab") + 2 ("ab" x2) = most frequent.
  EXPECT_EQ(m.merges[0], (std::pair<std::string, std::string>{"a", "b"}));
  EXPECT_EQ(m.vocab[257], "ab");
  EXPECT_EQ(train_bpe(texts, o).merges, m.merges);  // deterministic

  Tokenizer tok = Tokenizer::from_json_string(tokenizer_json(m), "t/tokenizer.json", tokenizer_config_json(m, o));
  EXPECT_EQ(tok.eos_id(), 0);
  std::vector<int32_t> ids = tok.encode("ab", false);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0], 257);
  EXPECT_EQ(tok.decode(tok.encode("any text at all: ünïcode", false)), "any text at all: ünïcode");
}

TEST(BpeTrainer, Errors) {
  BpeTrainOptions o;
  o.vocab_size = 100;
  MOEFORGE_EXPECT_ERROR(train_bpe({"x"}, o), "smaller than the 260 special and byte tokens");
  o.vocab_size = 1000;
  o.eos_token = "<missing>";
  MOEFORGE_EXPECT_ERROR(train_bpe({"x"}, o), "'<missing>' is used as bos/eos/pad");
}

}  // namespace
}  // namespace moeforge::init
