"""The embedded default base model (data/base, made by tools/make_base.sh): at most 20 MB, loads in
transformers with the same logits as `moeforge forward`, its tokenizer gives Hugging Face
tokenizers' ids on the embedded corpus, and its model card says how to reproduce it."""
import gzip
import json
import os
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from train_common import fail, moeforge

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BASE = os.path.join(ROOT, "data", "base")


def corpus_samples(limit_per_domain=20):
    texts = []
    for name in ("prose", "code", "math"):
        with gzip.open(os.path.join(ROOT, "data", "corpus", f"{name}.jsonl.gz"), "rt") as f:
            for i, line in enumerate(f):
                if i >= limit_per_domain:
                    break
                texts.append(json.loads(line)["text"][:2000])
    return texts


def main():
    failures = []
    size = sum(os.path.getsize(os.path.join(BASE, f)) for f in os.listdir(BASE))
    if size > 20 * 1000 * 1000:
        failures.append(f"data/base is {size} bytes (> 20 MB)")
    with open(os.path.join(BASE, "README.md")) as f:
        if "tools/make_base.sh" not in f.read():
            failures.append("data/base/README.md does not say how to reproduce the model")

    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32).eval()
    reference_tok = Tokenizer.from_file(os.path.join(BASE, "tokenizer.json"))
    text = corpus_samples(1)[0][:400]
    ids = reference_tok.encode(text).ids[:64]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f.safetensors")
        moeforge("forward", BASE, "--ids", ",".join(map(str, ids)), "--out", out)
        ours = load_file(out)["logits"]
    diff = float(np.abs(ours - ref).max())
    if diff > 1e-4:
        failures.append(f"data/base: moeforge forward differs from transformers by {diff}")

    mismatches = 0
    samples = corpus_samples()
    for text in samples:
        expected = reference_tok.encode(text).ids
        got = json.loads(moeforge("tokenize", "--tokenizer", BASE, "--text", text, "--json").stdout)
        mismatches += expected != got
    if mismatches:
        failures.append(f"data/base tokenizer: {mismatches}/{len(samples)} corpus samples differ from tokenizers")
    print(f"data/base: {size / 1e6:.1f} MB, logits vs transformers {diff:.2e}, tokenizer {len(samples)} samples exact")
    fail(failures)


if __name__ == "__main__":
    main()
