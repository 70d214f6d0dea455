"""`moeforge tokenizer train` parity: the trained tokenizer.json loads in Hugging Face `tokenizers`
and `transformers` (bos/eos/pad, chat template), and moeforge's tokenizer and HF encode a few hundred
strings (corpus excerpts, unicode, whitespace, code, special tokens) to identical ids and decode
them back. Training is deterministic (same files twice). Env: MOEFORGE_BIN."""
import gzip
import json
import os
import random
import sys
import tempfile

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from moeforge_cli import run_moeforge  # noqa: E402

CORPUS = os.path.join(ROOT, "data", "corpus")

EXTRA = [
    "", " ", "  leading spaces", "trailing spaces   ", "tabs\tand\nnewlines\r\n", "\n\n\n", "a  b   c",
    "naïve café résumé", "日本語のテキスト", "emoji 🙂🚀 mixed", "Ünïcödé", "mañana ½ ¾ €100",
    "def f(x):\n    return x ** 2  # square\n", "if a != b and c <= d: pass", "x=[1,2,3];y={'k':v}",
    "It's, they're, we've, I'm, you'll, he'd", "DON'T SHOUT", "12345 67.89 1e-5 0x1F",
    "<|endoftext|>", "text<|endoftext|>more text", "<|im_start|>user\nhi<|im_end|>\n", "<|pad|><|pad|>",
    "\u00a0non-breaking\u2003em space", "zero\u200bwidth", "\x00\x01 control", "A" * 300,
]


def corpus_strings(count, seed=0):
    rng = random.Random(seed)
    texts = []
    for name in ("prose", "code", "math"):
        with gzip.open(os.path.join(CORPUS, f"{name}.jsonl.gz"), "rt", encoding="utf-8") as f:
            records = [json.loads(line)["text"] for line in f]
        for _ in range(count):
            t = rng.choice(records)
            start = rng.randrange(0, max(1, len(t) - 10))
            texts.append(t[start:start + rng.randint(1, 400)])
    return texts


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        # Train on a slice of the embedded corpus (fast) and again to check determinism.
        out = os.path.join(tmp, "tok")
        args = ["tokenizer", "train", "--vocab", "2000", "--data", CORPUS, "--max-bytes", "3000000"]
        run_moeforge(*args, "--out", out)
        run_moeforge(*args, "--out", out + "2")
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if open(os.path.join(out, name), "rb").read() != open(os.path.join(out + "2", name), "rb").read():
                failures.append(f"{name} differs between two identical runs")
        hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        if hf.get_vocab_size() != 2000:
            failures.append(f"vocab size {hf.get_vocab_size()} != 2000")

        texts = corpus_strings(100) + EXTRA
        lines = "".join(json.dumps(t) + "\n" for t in texts)
        got = run_moeforge("tokenize", "--tokenizer", out, "--lines", "--file", "-", input=lines).stdout.splitlines()
        mismatches = 0
        for text, line in zip(texts, got):
            ours = json.loads(line)
            theirs = hf.encode(text).ids
            if ours != theirs:
                mismatches += 1
                if mismatches <= 5:
                    failures.append(f"ids differ for {text[:60]!r}: moeforge {ours[:12]} vs HF {theirs[:12]}")
            if hf.decode(theirs, skip_special_tokens=False) != text:
                failures.append(f"HF decode does not round-trip {text[:60]!r}")
        if len(got) != len(texts):
            failures.append(f"moeforge returned {len(got)} lines for {len(texts)} texts")

        # transformers sees the special tokens and the chat template.
        import transformers
        tok = transformers.AutoTokenizer.from_pretrained(out)
        if (tok.eos_token, tok.bos_token, tok.pad_token) != ("<|endoftext|>", "<|endoftext|>", "<|pad|>"):
            failures.append(f"special tokens {(tok.eos_token, tok.bos_token, tok.pad_token)}")
        chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                                       tokenize=False)
        if chat != "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n":
            failures.append(f"chat template renders {chat!r}")
        print(f"tokenizer train parity: {len(texts)} strings, {mismatches} id mismatches")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
