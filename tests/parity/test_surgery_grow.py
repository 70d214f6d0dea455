"""Parity: `moeforge grow` on every MoE family (per-expert, GPT-OSS fused bf16 and MXFP4): clones
appended (old indices unchanged, clone bytes identical to their source, MXFP4 stays MXFP4), the
logit difference original vs grown is reported, outputs load in our runtime and match transformers;
plans, --router-bias, --dequantize; bad input (unknown expert, uneven clones, plan for another
model, full disk) fails with a one-line error, leaves nothing behind and the input untouched.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model, quantize_gpt_oss_mxfp4  # noqa: E402
from surgery_common import finish, moeforge, parity, random_ids, reported_diff, tree_checksum  # noqa: E402

MOE = ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss", "deepseek_v3"]


def tensors(model_dir):
    out = {}
    for name in os.listdir(model_dir):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(model_dir, name)))
    return out


def check_clones(label, src_dir, out_dir, failures):
    """Every [E, ...] tensor grew by the clones; old slices and clone slices are bit-identical."""
    src, out = tensors(src_dir), tensors(out_dir)
    record = json.load(open(os.path.join(out_dir, "moeforge_grow.json")))
    before = record["num_experts_before"]
    for layer, entries in record["layers"].items():
        prefix = f"model.layers.{layer}.mlp."
        for name, t in out.items():
            if not name.startswith(prefix) or name.endswith("router.weight") or name.endswith("gate.weight") \
                    or name.endswith("router.bias") or "moeforge_selection_bias" in name:
                continue
            if name in src and t.shape[0] == before + len(entries) and src[name].shape[0] == before:
                if not torch.equal(t[:before], src[name]):
                    failures.append(f"{label}: {name} old experts changed")
                for entry in entries:
                    if not torch.equal(t[entry["index"]], src[name][entry["source"]]):
                        failures.append(f"{label}: {name} clone {entry['index']} differs from source {entry['source']}")
            elif ".experts." in name and name not in src:  # per-expert clone
                index = int(name.split(".experts.")[1].split(".")[0])
                entry = [e for e in entries if e["index"] == index]
                source = name.replace(f".experts.{index}.", f".experts.{entry[0]['source']}.") if entry else None
                if not source or not torch.equal(t, src[source]):
                    failures.append(f"{label}: {name} is not a copy of its source")
    return record


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for family in MOE:
            sources[family] = os.path.join(tmp, family)
            build_tiny_model(family, sources[family])
        sources["gpt_oss_mxfp4"] = os.path.join(tmp, "gpt_oss_mxfp4")
        build_tiny_model("gpt_oss", sources["gpt_oss_mxfp4"])
        quantize_gpt_oss_mxfp4(sources["gpt_oss_mxfp4"])
        before = {f: tree_checksum(d) for f, d in sources.items()}
        for family, src in sources.items():
            out = os.path.join(tmp, f"grown_{family}")
            try:
                _, text = moeforge("grow", src, "--clone", "*:0,*:1", "--out", out)
                diff = reported_diff(text)
                record = check_clones(family, src, out, failures)
                config = json.load(open(os.path.join(out, "config.json")))
                count = config.get("num_local_experts", config.get("num_experts", config.get("n_routed_experts")))
                if count != record["num_experts_after"] or count != record["num_experts_before"] + 2:
                    failures.append(f"{family}: config num_experts {count}, record {record}")
                native = family != "gpt_oss_mxfp4"  # transformers' MXFP4 path needs a GPU kernel
                _, hf = parity(f"grow {family}", out, ids, failures, native=native)
                hf_text = f"{hf:.2e}" if hf is not None else "n/a (MXFP4)"
                print(f"  grow {family:<14} +2 experts: original vs grown {diff:.3g} (reported); "
                      f"moeforge vs transformers {hf_text}")
            except Exception as error:  # noqa: BLE001
                failures.append(f"grow {family}: {error}")
        # GPT-OSS: split offset without noise vs no offset
        for offset in ["split", "none"]:
            out = os.path.join(tmp, f"gpt_oss_{offset}")
            _, text = moeforge("grow", sources["gpt_oss"], "--clone", "*:0", "--router-noise", "0", "--offset", offset,
                               "--out", out)
            print(f"  grow gpt_oss --offset {offset:<5} (no noise): original vs grown {reported_diff(text):.3g}")
        # exact starts, the settings `grow --help` and docs/PIPELINE.md name per router kind: a selection
        # bias that keeps the clones out of the top-k (units: probabilities for softmax / sigmoid
        # routers, logits for GPT-OSS). GPT-OSS and ungrouped DeepSeek-V3 routing are exactly the
        # original (0 in fp32); renormalised softmax routers up to float rounding of the wider softmax.
        sources["deepseek_v3_ungrouped"] = os.path.join(tmp, "deepseek_v3_ungrouped")
        build_tiny_model("deepseek_v3", sources["deepseek_v3_ungrouped"], n_group=1, topk_group=1)
        for family, bias, extra, limit in [("mixtral", "old:1", [], 1e-6), ("qwen3_moe", "old:1", [], 1e-6),
                                           ("gpt_oss", "old:50", ["--offset", "none"], 0.0),
                                           ("gpt_oss_mxfp4", "old:50", ["--offset", "none"], 0.0),
                                           ("deepseek_v3_ungrouped", "old:1", [], 0.0)]:
            out = os.path.join(tmp, f"exact_{family}")
            _, text = moeforge("grow", sources[family], "--clone", "*:0,*:1", "--router-bias", bias, *extra, "--out", out)
            diff = reported_diff(text)
            if diff > limit:
                failures.append(f"grow {family} --router-bias {bias}: original vs grown {diff:.3g} > {limit}")
            print(f"  grow {family:<14} --router-bias {bias} {' '.join(extra)}: original vs grown {diff:.2e}")
        # selection-only bias: stored as an extension tensor + config key; our runtime reads it
        out = os.path.join(tmp, "bias")
        moeforge("grow", sources["mixtral"], "--clone", "*:3", "--router-bias", "new:1", "--out", out)
        t = tensors(out)
        bias = t.get("model.layers.0.mlp.moeforge_selection_bias")
        config = json.load(open(os.path.join(out, "config.json")))
        if bias is None or bias.tolist() != [0.0] * 8 + [1.0] or not config.get("moeforge_selection_bias"):
            failures.append(f"--router-bias new:1: bias {bias}, config {config.get('moeforge_selection_bias')}")
        parity("grow --router-bias", out, ids, failures, native=False)
        # dequantize MXFP4 -> bf16 fused; transformers agrees with our runtime on it
        out = os.path.join(tmp, "dequant")
        moeforge("grow", sources["gpt_oss_mxfp4"], "--clone", "*:2", "--dequantize", "--out", out)
        if any(n.endswith("_blocks") for n in tensors(out)):
            failures.append("--dequantize left MXFP4 blocks")
        parity("grow --dequantize", out, ids, failures)
        # a plan file
        plan = os.path.join(tmp, "plan.json")
        identity = {"model_type": "mixtral", "num_layers": 3, "num_experts": 8, "hidden_size": 64}
        json.dump({"version": 1, "model": identity, "clone": {"0": [5], "1": [6], "2": [7]}}, open(plan, "w"))
        out = os.path.join(tmp, "planned")
        moeforge("grow", sources["mixtral"], "--plan", plan, "--out", out, "--no-verify")
        check_clones("plan", sources["mixtral"], out, failures)
        # bad input
        wrong = os.path.join(tmp, "wrong_plan.json")
        json.dump({"version": 1, "model": {**identity, "num_experts": 32}, "clone": {"0": [1]}}, open(wrong, "w"))
        cases = [
            ("unknown expert", [sources["mixtral"], "--clone", "*:8"], "unknown expert 8", None),
            ("uneven clones", [sources["mixtral"], "--clone", "0:1"], "same number of clones", None),
            ("plan for another model", [sources["mixtral"], "--plan", wrong], "different model", None),
            ("not a MoE layer", [sources["qwen2_moe"], "--clone", "1:0"], "not a MoE layer", None),
        ]
        disk = os.path.join(tmp, "tiny_disk")
        os.makedirs(disk)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], capture_output=True).returncode == 0
        if mounted:
            cases.append(("full disk", [sources["mixtral"], "--clone", "*:0"], "not enough disk space", disk))
        else:
            print("  (full-disk test skipped: cannot mount a tmpfs here)")
        try:
            for label, args, expect, where in cases:
                out = os.path.join(where or tmp, "bad")
                code, text = moeforge("grow", *args, "--out", out, expect_ok=False)
                if code == 0 or expect not in text or len(text.strip().splitlines()) != 1:
                    failures.append(f"{label}: expected a one-line error with '{expect}', got rc {code}: {text.strip()}")
                left = [n for n in os.listdir(where or tmp) if n.startswith(".bad") or n == "bad"]
                if left:
                    failures.append(f"{label}: left {left} behind")
                print(f"  {label}: {text.strip()}")
        finally:
            if mounted:
                subprocess.run(["umount", disk])
        for family, digest in before.items():
            if tree_checksum(sources[family]) != digest:
                failures.append(f"input {family} changed")
    return finish("grow parity", failures, start, f"{len(sources)} families grown, plan, bias, dequantize, bad input pass")


if __name__ == "__main__":
    sys.exit(main())
