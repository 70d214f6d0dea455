"""A byte-level BPE tokenizer whose ids fit the tiny test models' 300-token vocabulary, for commands that
need a tokenizer (generate, stats, select-data) on models built by families.build_tiny_model."""
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT = "hello world, the experts route every token to the expert that fits it best"


def save_small_tokenizer(model_dir, vocab_size=280):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    tok.train_from_iterator([TEXT] * 20, trainer)
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    return tok
