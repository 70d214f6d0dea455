"""Parity: `moeforge merge`. N identical dense models merged with a zero router equal the source
(<= 1e-5); merges of different models with a hidden (per-expert prompt) or random router load in our
runtime and match transformers (<= 1e-4); a Qwen2-MoE target keeps the base FFN as its native shared
expert; a mismatched architecture fails naming both config files and the field.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from surgery_common import EXACT, finish, moeforge, ours, parity, random_ids, tree_checksum  # noqa: E402


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        d = lambda name: os.path.join(tmp, name)  # noqa: E731
        for name, family, seed, extra in [("a", "llama", 0, {}), ("a2", "llama", 0, {}), ("a3", "llama", 0, {}),
                                          ("b", "llama", 1, {}), ("c", "llama", 2, {}),
                                          ("wide", "llama", 0, {"intermediate_size": 128}),
                                          ("q0", "qwen2", 0, {}), ("q1", "qwen2", 1, {})]:
            build_tiny_model(family, d(name), seed=seed, **extra)
        before = {n: tree_checksum(d(n)) for n in ["a", "b", "c"]}
        # identical sources + zero router = the source
        moeforge("merge", "--base", d("a"), "--expert", f"x={d('a')}", "--expert", f"y={d('a2')}", "--expert",
                 f"z={d('a3')}", "--top-k", "2", "--router", "zero", "--out", d("same"))
        diff = (ours(d("same"), ids) - ours(d("a"), ids)).abs().max().item()
        if diff > EXACT:
            failures.append(f"merge of 3 identical models differs from the source by {diff:.3g}")
        _, hf = parity("merge identical", d("same"), ids, failures)
        print(f"  3 identical llama -> mixtral, zero router: vs source {diff:.2e}; moeforge vs transformers {hf:.2e}")
        # different experts, hidden router from prompts (token ids), averaged non-FFN
        prompts = d("prompts.json")
        json.dump({"code": [[1, 2, 3, 4, 5]], "math": {"positive": [[6, 7, 8]], "negative": [[9, 10]]}, "chat": [[11, 12]]},
                  open(prompts, "w"))
        for non_ffn in ["average", "base"]:
            out = d(f"btx_{non_ffn}")
            moeforge("merge", "--base", d("a"), "--expert", f"code={d('a')}", "--expert", f"math={d('b')}", "--expert",
                     f"chat={d('c')}", "--top-k", "2", "--prompts", prompts, "--non-ffn", non_ffn, "--out", out)
            _, hf = parity(f"merge hidden {non_ffn}", out, ids, failures)
            print(f"  3 llama -> mixtral, hidden router, non-FFN {non_ffn}: moeforge vs transformers {hf:.2e}")
        # random router, qwen2 -> qwen2_moe with the base FFN as shared expert
        out = d("qwen_shared")
        moeforge("merge", "--base", d("q0"), "--expert", f"p={d('q0')}", "--expert", f"q={d('q1')}", "--top-k", "1",
                 "--to", "qwen2_moe", "--shared-expert", "--out", out)
        _, hf = parity("merge qwen2_moe shared", out, ids, failures)
        print(f"  2 qwen2 -> qwen2_moe + shared expert, random router: moeforge vs transformers {hf:.2e}")
        # mismatched architecture
        code, text = moeforge("merge", "--base", d("a"), "--expert", f"x={d('a')}", "--expert", f"w={d('wide')}",
                              "--top-k", "1", "--out", d("bad"), expect_ok=False)
        if code == 0 or "intermediate_size" not in text or "config.json" not in text or os.path.exists(d("bad")):
            failures.append(f"mismatched merge: rc {code}: {text.strip()}")
        print(f"  mismatch: {text.strip()}")
        code, text = moeforge("merge", "--base", d("a"), "--expert", f"x={d('a')}", "--expert", f"q={d('q0')}",
                              "--top-k", "1", "--out", d("bad"), expect_ok=False)
        if code == 0 or "model_type" not in text:
            failures.append(f"merge llama + qwen2: rc {code}: {text.strip()}")
        for n, digest in before.items():
            if tree_checksum(d(n)) != digest:
                failures.append(f"input {n} changed")
    return finish("merge parity", failures, start, "identical merge exact, hidden/random routers, shared expert, errors pass")


if __name__ == "__main__":
    sys.exit(main())
