"""Parity: `moeforge upcycle` from every dense family. copy + zero router (+ renormalised top-k, or
E/K scaling without it) must reproduce the dense logits (<= 1e-5, --verify); every output must load
in our runtime and, for native families, give transformers' logits (<= 1e-4). Other methods and
router inits must produce loadable, finite models; gpt_neo and impossible targets fail clearly.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from surgery_common import EXACT, finish, moeforge, parity, random_ids, reported_diff, tree_checksum  # noqa: E402

# (source, target, extra flags, exact?)
CASES = [
    ("llama", "mixtral", [], True),
    ("mistral", "mixtral", [], True),
    ("qwen2", "qwen2_moe", [], True),
    ("qwen2", "qwen2_moe", ["--no-renormalize"], True),
    ("qwen3", "qwen3_moe", [], True),
    ("qwen3", "qwen3_moe", ["--layers", "0,2"], True),
    ("llama", "olmoe", [], False),  # OLMoE always normalises q/k: not equivalent, but loadable
    ("llama", "mixtral", ["--method", "noise", "--noise-std", "0.05", "--router", "random"], False),
    ("llama", "mixtral", ["--method", "drop", "--drop-ratio", "0.5", "--seed", "3"], False),
    ("llama", "mixtral", ["--method", "granular", "--granularity", "2", "--experts", "4", "--top-k", "4"], True),
]


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for family in ["llama", "mistral", "qwen2", "qwen3", "gpt_neo"]:
            sources[family] = os.path.join(tmp, family)
            build_tiny_model(family, sources[family])
        before = {f: tree_checksum(d) for f, d in sources.items()}
        for i, (src, target, extra, exact) in enumerate(CASES):
            label = f"{src}->{target} {' '.join(extra)}".strip()
            out = os.path.join(tmp, f"out{i}")
            args = ["upcycle", sources[src], "--to", target, "--out", out, "--verify"]
            if "--experts" not in extra:
                args += ["--experts", "4", "--top-k", "2"]
            try:
                _, text = moeforge(*args, *extra)
                diff = reported_diff(text)
                if exact and diff > EXACT:
                    failures.append(f"{label}: dense vs upcycled max diff {diff:.3g} > {EXACT}")
                _, hf = parity(label, out, ids, failures)
                print(f"  {label:<48} dense vs MoE {diff:.2e}; moeforge vs transformers {hf:.2e}")
            except Exception as error:  # noqa: BLE001 - report every case
                failures.append(f"{label}: {error}")
        # hidden router from per-expert prompts (token ids): rows are unit vectors
        out = os.path.join(tmp, "hidden")
        prompts = os.path.join(tmp, "prompts.json")
        with open(prompts, "w") as f:
            json.dump([[[1, 2, 3, 4]], {"positive": [[5, 6, 7]], "negative": [[8, 9]]}, [[10, 11, 12]], [[13, 14]]], f)
        try:
            moeforge("upcycle", sources["llama"], "--experts", "4", "--top-k", "2", "--to", "mixtral", "--router", "hidden",
                     "--prompts", prompts, "--out", out)
            from safetensors.torch import load_file
            gate = load_file(os.path.join(out, "model.safetensors"))["model.layers.1.block_sparse_moe.gate.weight"]
            norms = gate.float().norm(dim=1)
            if (norms - 1).abs().max() > 1e-3:
                failures.append(f"hidden router rows are not unit vectors: {norms.tolist()}")
            parity("llama->mixtral hidden", out, ids, failures)
            print("  llama->mixtral --router hidden: unit router rows")
        except Exception as error:  # noqa: BLE001
            failures.append(f"hidden router: {error}")
        # dry run writes nothing
        out = os.path.join(tmp, "dry")
        _, text = moeforge("upcycle", sources["llama"], "--experts", "4", "--top-k", "2", "--to", "mixtral", "--out", out,
                           "--dry-run")
        if os.path.exists(out) or "plan:" not in text:
            failures.append(f"--dry-run wrote {out} or printed no plan: {text}")
        # clear errors, no output left behind
        for label, args, expect in [
            ("gpt_neo source", [sources["gpt_neo"], "--to", "mixtral"], "gpt_neo"),
            ("qwen2 bias -> mixtral", [sources["qwen2"], "--to", "mixtral"], "q/k/v bias"),
            ("qwen3 q/k norm -> mixtral", [sources["qwen3"], "--to", "mixtral"], "q/k norm"),
            ("top-k > experts", [sources["llama"], "--to", "mixtral", "--top-k", "9"], "--top-k"),
            ("layers on mixtral", [sources["llama"], "--to", "mixtral", "--layers", "0"], "--layers"),
        ]:
            out = os.path.join(tmp, "bad")
            full = ["upcycle", *args, "--experts", "4", "--out", out]
            if "--top-k" not in args:
                full += ["--top-k", "2"]
            code, text = moeforge(*full, expect_ok=False)
            if code == 0 or expect not in text or os.path.exists(out) or len(text.strip().splitlines()) != 1:
                failures.append(f"{label}: expected a one-line error naming '{expect}', got rc {code}: {text.strip()}")
            leftovers = [n for n in os.listdir(tmp) if n.startswith(".bad")]
            if leftovers:
                failures.append(f"{label}: left {leftovers}")
        for family, digest in before.items():
            if tree_checksum(sources[family]) != digest:
                failures.append(f"input {family} changed")
    return finish("upcycle parity", failures, start, f"{len(CASES)} upcycles + hidden router + errors pass")


if __name__ == "__main__":
    sys.exit(main())
