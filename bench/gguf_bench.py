"""GGUF export (issue 17): llama.cpp itself runs what `moeforge export-gguf` writes, and the export's
speed against llama.cpp's converter and this machine's file-copy rate.

  - logits: for each family (tiny models from transformers' classes with the real tokenizers, as in
    tests/parity/test_export_gguf.py), export --type f32 and q8_0, evaluate 16 random token ids with
    llama.cpp (llama-cpp-python) and compare its logits with `moeforge forward`'s: max |diff| relative
    to the largest |logit|. f32 should agree to ~1e-3 (llama.cpp's own kernels; MXFP4 and q8_0 weights
    are multiplied with q8-quantised activations there, so those read ~1e-2).
  - speed: a GPT-OSS-shaped model (hidden 512, 4 layers, 8 experts, MXFP4, its 201,088-token vocab):
    wall time of export-gguf vs convert_hf_to_gguf.py (same --type), and export bytes/s against a plain
    copy of the output file here (the machine's limit for writing that many bytes).

llama-cpp-python is not in requirements-dev.txt (it compiles llama.cpp, ~15 min on 2 cores):
  .venv/bin/pip install llama-cpp-python==0.3.36
  MOEFORGE_BIN=build/moeforge .venv/bin/python bench/gguf_bench.py [--threads 2]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from families import build_tiny_model, quantize_gpt_oss_mxfp4  # noqa: E402
from llama_cpp_reference import convert  # noqa: E402
from moeforge_cli import moeforge  # noqa: E402
from test_export_gguf import CASES, build_case  # noqa: E402

transformers.logging.set_verbosity_error()
LOGIT_CASES = ["llama", "mistral", "qwen2", "qwen3_padded_vocab", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss_mxfp4"]


# llama.cpp runs in a process of its own: loaded into one where torch has already run, its CPU
# backend dies with SIGILL on this machine (an AMX-built ggml beside oneDNN's threads).
_LLAMA_CPP = """
import sys, numpy as np
from llama_cpp import Llama
path, ids, threads, out = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=path, logits_all=True, n_ctx=64, n_batch=64, n_threads=threads, verbose=False)
llm.eval(ids)
np.save(out, np.array(llm.scores[:len(ids)], dtype=np.float32))
llm.close()
"""


def llama_cpp_logits(path, ids, threads):
    out = path + ".logits.npy"
    result = subprocess.run([sys.executable, "-c", _LLAMA_CPP, path, ",".join(map(str, ids)), str(threads), out])
    if result.returncode != 0:  # e.g. SIGILL: a kernel of this llama.cpp build uses an instruction the CPU lacks
        return None
    logits = np.load(out)
    os.remove(out)
    return logits


def moeforge_logits(model_dir, ids, work):
    out = os.path.join(work, "forward.safetensors")
    moeforge("forward", model_dir, "--ids", ",".join(map(str, ids)), "--out", out)
    logits = load_file(out)["logits"].float().numpy().reshape(len(ids), -1)
    os.remove(out)
    return logits


def logit_rows(work, threads):
    rows = []
    ids = [int(x) for x in np.random.default_rng(0).integers(5, 250, 16)]  # within every tiny sliding window
    by_label = {case[0]: case for case in CASES}
    for label in LOGIT_CASES:
        _, family, tokenizer, overrides, mxfp4, _ = by_label[label]
        model_dir = build_case(work, label, family, tokenizer, overrides, mxfp4)
        ours = moeforge_logits(model_dir, ids, work)
        scale = float(np.abs(ours).max())
        row = [label]
        for outtype in ("f32", "q8_0"):
            path = os.path.join(work, f"{label}.{outtype}.gguf")
            moeforge("export-gguf", model_dir, "--out", path, "--type", outtype)
            theirs = llama_cpp_logits(path, ids, threads)
            row.append(None if theirs is None else float(np.abs(theirs - ours).max()) / scale)
            os.remove(path)
        rows.append(row)
        shutil.rmtree(model_dir)
    return rows


def speed(work, outtype):
    from tokenizers import Tokenizer
    from shared_data import shared_data_dir
    tok_dir = os.path.join(shared_data_dir(), "tokenizers", "gptoss")
    vocab = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json")).get_vocab_size()
    model_dir = os.path.join(work, "gpt_oss_speed")
    build_tiny_model("gpt_oss", model_dir, vocab_size=vocab, dtype=torch.bfloat16, hidden_size=512, intermediate_size=512,
                     num_local_experts=8, num_attention_heads=8, num_key_value_heads=2, head_dim=64)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, name), model_dir)
    quantize_gpt_oss_mxfp4(model_dir)
    ours, ref = os.path.join(work, "ours.gguf"), os.path.join(work, "ref.gguf")
    start = time.time()
    moeforge("--no-progress", "export-gguf", model_dir, "--out", ours, "--type", outtype)
    ours_s = time.time() - start
    start = time.time()
    convert(model_dir, ref, outtype)
    ref_s = time.time() - start
    size = os.path.getsize(ours)
    start = time.time()
    shutil.copyfile(ours, os.path.join(work, "copy.gguf"))
    copy_s = time.time() - start
    return size, ours_s, ref_s, copy_s


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="moeforge_gguf_bench_")
    try:
        print("llama.cpp logits vs moeforge forward (max |diff| / max |logit|, 16 tokens):")
        print(f"  {'model':<16} {'f32':>10} {'q8_0':>10}")
        show = lambda v: "crashed" if v is None else f"{v:.2e}"  # llama.cpp died (its exit status is printed above)
        for label, f32, q8 in logit_rows(work, args.threads):
            print(f"  {label:<16} {show(f32):>10} {show(q8):>10}")
        for outtype in ("bf16", "q8_0"):
            size, ours_s, ref_s, copy_s = speed(work, outtype)
            print(f"export speed, GPT-OSS-shaped (hidden 512, 4 layers, 8 MXFP4 experts, 201,088 vocab), --type {outtype}: "
                  f"{size / 1e6:.0f} MB; moeforge {ours_s:.2f} s, convert_hf_to_gguf.py {ref_s:.2f} s "
                  f"({ref_s / ours_s:.1f}x faster); {size / ours_s / 1e6:.0f} MB/s = {copy_s / ours_s:.2f} of this "
                  f"machine's copy rate ({size / copy_s / 1e6:.0f} MB/s)")
            for name in ("ours.gguf", "ref.gguf", "copy.gguf"):
                os.remove(os.path.join(work, name))
            shutil.rmtree(os.path.join(work, "gpt_oss_speed"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
