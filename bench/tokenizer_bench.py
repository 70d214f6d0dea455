#!/usr/bin/env python3
"""Encode throughput of `moeforge tokenize` vs Hugging Face `tokenizers`, single-threaded.

Usage (from the repository root):
    .venv/bin/python bench/tokenizer_bench.py --moeforge build/moeforge \
        [--data DIR (default: $MOEFORGE_SHARED_DATA, else data/testdata.tar.xz)] [--tokenizers gptoss,llama3,qwen3,llama2] [--mb 5] [--rounds 3]

Both sides encode the same text: the Brown corpus (tags stripped, one sentence per line) cut to
--mb megabytes, in two modes:
  lines  each line encoded separately (HF: encode_batch with TOKENIZERS_PARALLELISM=false, so the
         loop runs in Rust on one thread; moeforge: `tokenize --lines --bench N`)
  text   the whole text as one string (HF: encode; moeforge: `tokenize --bench N`)
Load time is excluded on both sides; each figure is the best of --rounds runs. Token counts are
compared as a sanity check. The ratio is moeforge MB/s / HF MB/s (>= 1 means moeforge is faster).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from shared_data import shared_data_dir  # noqa: E402
from tokenizer_corpus import brown_text  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def hf_bench(tok, mode, text, lines, rounds):
    best, tokens = float("inf"), 0
    for _ in range(rounds):
        start = time.perf_counter()
        if mode == "lines":
            tokens = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
        else:
            tokens = len(tok.encode(text, add_special_tokens=False).ids)
        best = min(best, time.perf_counter() - start)
    return best, tokens


def moeforge_bench(binary, directory, path, mode, rounds):
    cmd = [binary, "tokenize", "--tokenizer", directory, "--file", path, "--no-special", "--bench", str(rounds)]
    if mode == "lines":
        cmd.append("--lines")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return report["best_seconds"], report["tokens"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--data", default=None, help="tokenizers/ and corpus/brown/ (default: $MOEFORGE_SHARED_DATA, "
                        "else the in-repo data/testdata.tar.xz)")
    parser.add_argument("--tokenizers", default="gptoss,llama3,qwen3,llama2")
    parser.add_argument("--modes", default="lines,text")
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.data = args.data or shared_data_dir()

    text = brown_text(args.data)
    cut = text.encode("utf-8")[: int(args.mb * 1e6)].decode("utf-8", "ignore")
    text = cut[: cut.rfind("\n") + 1]
    lines = text.split("\n")[:-1]
    size_mb = len(text.encode("utf-8")) / 1e6
    print(f"text: {size_mb:.2f} MB, {len(lines)} lines (Brown corpus); best of {args.rounds} rounds, one thread")
    with tempfile.TemporaryDirectory() as tmp:
        text_path = os.path.join(tmp, "text.txt")
        lines_path = os.path.join(tmp, "lines.jsonl")
        with open(text_path, "w", encoding="utf-8") as f:
            f.write(text)
        with open(lines_path, "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines))
        print(f"{'tokenizer':10} {'mode':6} {'HF MB/s':>9} {'moeforge MB/s':>14} {'ratio':>7}  tokens")
        worst = float("inf")
        for name in args.tokenizers.split(","):
            directory = os.path.join(args.data, "tokenizers", name)
            tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
            for mode in args.modes.split(","):
                hf_s, hf_tokens = hf_bench(tok, mode, text, lines, args.rounds)
                mf_s, mf_tokens = moeforge_bench(args.moeforge, directory,
                                                 lines_path if mode == "lines" else text_path, mode, args.rounds)
                ratio = hf_s / mf_s
                worst = min(worst, ratio)
                check = "same" if hf_tokens == mf_tokens else f"DIFFER hf={hf_tokens} moeforge={mf_tokens}"
                print(f"{name:10} {mode:6} {size_mb / hf_s:9.2f} {size_mb / mf_s:14.2f} {ratio:6.2f}x  {check}",
                      flush=True)
        print(f"lowest ratio moeforge/HF: {worst:.2f}x")


if __name__ == "__main__":
    main()
