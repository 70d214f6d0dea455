#!/usr/bin/env python3
"""Token-exact parity of `moeforge tokenize` with Hugging Face `tokenizers` on the four real
tokenizers in $MOEFORGE_SHARED_DATA/tokenizers (default: the in-repo data/testdata.tar.xz; GPT-OSS, Llama 3, Qwen3, Llama 2).

For a deterministic corpus (tokenizer_corpus.py) it compares encode with add_special_tokens on and
off, decode of those ids (with and without skip_special_tokens) and decode of random id lists.
Exit code 0 = everything identical. Env: MOEFORGE_BIN, MOEFORGE_SHARED_DATA.
"""
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import run_moeforge  # noqa: E402
from shared_data import shared_data_dir  # noqa: E402
from tokenizer_corpus import build_corpus  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402

NAMES = ["gptoss", "llama3", "qwen3", "llama2"]
MAX_REPORTS = 5


def run_cli(tokenizer_dir, lines, *flags):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("".join(line + "\n" for line in lines))
        path = f.name
    try:
        # Bytes, not text: stdout is decoded as UTF-8 below whatever the locale.
        proc = run_moeforge("tokenize", "--tokenizer", tokenizer_dir, "--file", path, "--lines", *flags,
                            check=False, text=False, timeout=300)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"moeforge tokenize {' '.join(flags)} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')}")
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "", "output does not end with a newline"
    out = [json.loads(line) for line in out[:-1]]
    if len(out) != len(lines):
        raise RuntimeError(f"expected {len(lines)} output lines, got {len(out)}")
    return out


def compare(label, texts, expected, got, reports):
    bad = 0
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            bad += 1
            if len(reports) < MAX_REPORTS:
                first = next((k for k in range(min(len(e), len(g))) if e[k] != g[k]), min(len(e), len(g)))
                reports.append(f"  [{label}] #{i} input={texts[i]!r:.200}\n"
                               f"      expected={e!r:.400}\n      got     ={g!r:.400}\n"
                               f"      first difference at index {first}")
    return bad


def main():
    data = shared_data_dir()
    corpus = build_corpus(data)
    encoded_lines = [json.dumps(s) for s in corpus]
    total_bad, reports, done = 0, [], 0
    start = time.time()
    for name in NAMES:
        directory = os.path.join(data, "tokenizers", name)
        ref = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        bad = 0
        for special in (True, False):
            expected = [e.ids for e in ref.encode_batch(corpus, add_special_tokens=special)]
            got = run_cli(directory, encoded_lines, *([] if special else ["--no-special"]))
            bad += compare(f"{name} encode special={special}", corpus, expected, got, reports)
            id_lines = [",".join(map(str, ids)) for ids in expected]
            for skip in (False, True):
                want = [ref.decode(ids, skip_special_tokens=skip) for ids in expected]
                got_text = run_cli(directory, id_lines, "--decode", *(["--no-special"] if skip else []))
                bad += compare(f"{name} decode special={special} skip={skip}", id_lines, want, got_text, reports)
        # Random id lists exercise decoders on arbitrary (often invalid UTF-8) byte tokens.
        rng = random.Random(99)
        size = ref.get_vocab_size(with_added_tokens=True)
        random_ids = [[rng.randrange(size) if rng.random() < 0.5 else rng.randrange(min(size, 600))
                       for _ in range(rng.randint(0, 12))] for _ in range(300)]
        id_lines = [",".join(map(str, ids)) for ids in random_ids]
        for skip in (False, True):  # note: Python's decode() skips special tokens by default
            want = [ref.decode(ids, skip_special_tokens=skip) for ids in random_ids]
            got_text = run_cli(directory, id_lines, "--decode", *(["--no-special"] if skip else []))
            bad += compare(f"{name} decode random skip={skip}", id_lines, want, got_text, reports)
        print(f"  {name}: {'ok' if bad == 0 else f'{bad} mismatches'}")
        total_bad += bad
        done += bad == 0
    for r in reports:
        print(r)
    print(f"tokenizer parity: {done}/{len(NAMES)} tokenizers, {len(corpus)} strings each, "
          f"{total_bad} mismatches ({time.time() - start:.1f} s)")
    return 0 if total_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
