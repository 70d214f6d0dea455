"""Parity: `moeforge add-shared-expert` on every MoE family. At --scale 0 (fixed, learned or sigmoid
gate) the output equals the original model (<= 1e-5); Qwen2-MoE gets its native shared expert, which
transformers runs with the same logits as our runtime (<= 1e-4); the other families use moeforge's
extension, which our runtime reads (and transformers ignores: equal at scale 0). Plans choose the
experts for top1 / pca_topK; missing or foreign plans fail clearly. Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import sys
import tempfile
import time

from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model, quantize_gpt_oss_mxfp4  # noqa: E402
from surgery_common import EXACT, finish, moeforge, parity, random_ids, reported_diff, tree_checksum  # noqa: E402


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for family in ["mixtral", "qwen3_moe", "olmoe", "gpt_oss"]:
            sources[family] = os.path.join(tmp, family)
            build_tiny_model(family, sources[family])
        sources["gpt_oss_mxfp4"] = os.path.join(tmp, "gpt_oss_mxfp4")
        build_tiny_model("gpt_oss", sources["gpt_oss_mxfp4"])
        quantize_gpt_oss_mxfp4(sources["gpt_oss_mxfp4"])
        sources["qwen2_moe"] = os.path.join(tmp, "qwen2_moe")  # without its shared expert
        build_tiny_model("qwen2_moe", sources["qwen2_moe"], shared_expert_intermediate_size=0)
        before = {f: tree_checksum(d) for f, d in sources.items()}
        for family, src in sources.items():
            gates = ["sigmoid"] if family == "qwen2_moe" else ["fixed", "learned", "sigmoid"]
            for gate in gates:
                out = os.path.join(tmp, f"{family}_{gate}")
                label = f"{family} --gate {gate}"
                try:
                    _, text = moeforge("add-shared-expert", src, "--init", "mean", "--scale", "0", "--gate", gate,
                                       "--verify", "--out", out)
                    diff = reported_diff(text)
                    if diff > EXACT:
                        failures.append(f"{label}: scale 0 differs from the original by {diff:.3g}")
                    _, hf = parity(label, out, ids, failures, native=family != "gpt_oss_mxfp4")
                    hf_text = f"{hf:.2e}" if hf is not None else "n/a"
                    print(f"  {label:<32} scale 0: original vs shared {diff:.2e}; moeforge vs transformers {hf_text}")
                except Exception as error:  # noqa: BLE001
                    failures.append(f"{label}: {error}")
        # Qwen2-MoE native at scale 0.2: transformers runs the shared expert too
        out = os.path.join(tmp, "qwen2_moe_02")
        _, text = moeforge("add-shared-expert", sources["qwen2_moe"], "--init", "mean", "--gate", "sigmoid", "--verify",
                           "--out", out)
        _, hf = parity("qwen2_moe scale 0.2", out, ids, failures)
        config = json.load(open(os.path.join(out, "config.json")))
        print(f"  qwen2_moe native shared expert, scale 0.2: original vs shared {reported_diff(text):.3g}; "
              f"moeforge vs transformers {hf:.2e}; shared_expert_intermediate_size {config['shared_expert_intermediate_size']}")
        # plans: top1 copies the most-used expert (per layer); pca_top2 averages two
        plan = os.path.join(tmp, "plan.json")
        usage = {str(l): [0.1] * 8 for l in range(3)}
        usage["0"][5] = 0.5
        usage["1"][2] = 0.5
        usage["2"][7] = 0.5
        identity = {"model_type": "mixtral", "num_layers": 3, "num_experts": 8, "hidden_size": 64}
        json.dump({"version": 1, "model": identity, "usage": usage}, open(plan, "w"))
        out = os.path.join(tmp, "top1")
        moeforge("add-shared-expert", sources["mixtral"], "--init", "top1", "--plan", plan, "--out", out)
        src_t = load_file(os.path.join(sources["mixtral"], "model.safetensors"))
        out_t = load_file(os.path.join(out, "model.safetensors"))
        for layer, expert in [(0, 5), (1, 2), (2, 7)]:
            a = out_t[f"model.layers.{layer}.mlp.shared_expert.up_proj.weight"]
            b = src_t[f"model.layers.{layer}.block_sparse_moe.experts.{expert}.w3.weight"]
            if not (a == b).all():
                failures.append(f"top1: layer {layer} shared expert is not expert {expert}")
        out = os.path.join(tmp, "pca")
        _, text = moeforge("add-shared-expert", sources["mixtral"], "--init", "pca_top2", "--plan", plan, "--out", out)
        parity("pca_top2", out, ids, failures, native=False)
        # bad input
        wrong = os.path.join(tmp, "wrong.json")
        json.dump({"version": 1, "model": {**identity, "hidden_size": 128}, "usage": usage}, open(wrong, "w"))
        for label, args, expect in [
            ("top1 without plan", [sources["mixtral"], "--init", "top1"], "--plan"),
            ("plan for another model", [sources["mixtral"], "--init", "top1", "--plan", wrong], "different model"),
            ("already shared", [os.path.join(tmp, "qwen2_moe_02"), "--gate", "sigmoid"], "already has a shared expert"),
            ("qwen2_moe fixed", [sources["qwen2_moe"], "--gate", "fixed"], "sigmoid"),
            ("bad init", [sources["mixtral"], "--init", "median"], "--init"),
        ]:
            out = os.path.join(tmp, "bad")
            code, text = moeforge("add-shared-expert", *args, "--out", out, expect_ok=False)
            if code == 0 or expect not in text or os.path.exists(out) or len(text.strip().splitlines()) != 1:
                failures.append(f"{label}: expected a one-line error with '{expect}', got rc {code}: {text.strip()}")
        for family, digest in before.items():
            if tree_checksum(sources[family]) != digest:
                failures.append(f"input {family} changed")
    return finish("add-shared-expert parity", failures, start, f"{len(sources)} families, gates, plans, errors pass")


if __name__ == "__main__":
    sys.exit(main())
