"""MXFP4 experts kept packed at run time (the default of forward, generate, stats and eval; `--dequantize`
decodes them into dense stacks at load, the old behaviour). On tiny GPT-OSS checkpoints with MXFP4
experts: packed and dequantised runs give bitwise the same logits and router logits in fp32 and bf16,
the same stats.json and the same eval report; packed fp32 logits equal transformers' (which dequantises
the same blocks) within 1e-5 relative; and a GPT-OSS model with 100M expert weights runs packed at a
peak RSS below the dequantised run's by most of the dense experts' size, with a memory plan (--verbose)
that says so. Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import re
import shutil
import sys
import tempfile
import time

import torch
import transformers
from safetensors.torch import load_file

from families import build_tiny_model, quantize_gpt_oss_mxfp4
from moeforge_cli import finish, moeforge, peak_rss, run_moeforge
from small_tokenizer import TEXT, save_small_tokenizer
from stats_helpers import run_independent_eval, run_independent_stats

torch.set_num_threads(2)
IDS = [3, 17, 250, 9, 41, 77, 120, 5, 199, 64, 12, 230, 33, 81, 7, 150, 42, 18, 99, 260]


def forward(model_dir, dtype, *extra):
    out = os.path.join(model_dir, "..", f"forward-{dtype}-{len(extra)}.safetensors")
    moeforge("forward", model_dir, "--ids", ",".join(map(str, IDS)), "--out", out, "--dtype", dtype, *extra)
    tensors = load_file(out)
    os.remove(out)
    return tensors


def check_forward(model_dir, failures):
    for dtype in ("fp32", "bf16"):
        packed, dense = forward(model_dir, dtype), forward(model_dir, dtype, "--dequantize")
        if sorted(packed) != sorted(dense):
            failures.append(f"{dtype}: packed run wrote {sorted(packed)}, dequantised {sorted(dense)}")
            continue
        for name in packed:
            if not torch.equal(packed[name], dense[name]):
                diff = (packed[name].float() - dense[name].float()).abs().max().item()
                failures.append(f"{dtype}: {name} differs between packed and dequantised experts (max {diff:.3g})")
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        want = model(torch.tensor([IDS])).logits[0]
    got = forward(model_dir, "fp32")["logits"].reshape(want.shape)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    if rel > 1e-5:
        failures.append(f"packed fp32 logits vs transformers: relative difference {rel:.3g} > 1e-5")


def check_stats_and_eval(work, model_dir, failures):
    data = os.path.join(work, "data.txt")
    with open(data, "w") as f:
        f.write("\n".join([TEXT] * 40) + "\n")
    outputs = {}
    for mode, extra in (("packed", []), ("dequantized", ["--dequantize"])):
        stats_dir = os.path.join(work, f"stats-{mode}")
        moeforge("stats", model_dir, "--data", data, "--block-size", "32", "--tokens", "2000", "--out", stats_dir, *extra)
        report = run_independent_eval(run_moeforge("--no-progress", "eval", model_dir, "--data", data, "--block-size", "32",
                                                   "--json", *extra).stdout)
        outputs[mode] = (run_independent_stats(stats_dir), report)
    if outputs["packed"][0] != outputs["dequantized"][0]:
        failures.append("stats.json differs between packed and dequantised experts")
    if outputs["packed"][1] != outputs["dequantized"][1]:
        failures.append(f"eval differs: packed {str(outputs['packed'][1])[:200]} vs {str(outputs['dequantized'][1])[:200]}")


def check_memory(work, failures):
    model_dir = os.path.join(work, "gpt_oss_wide")
    build_tiny_model("gpt_oss", model_dir, hidden_size=1024, intermediate_size=1024, num_local_experts=8,
                     num_attention_heads=8, num_key_value_heads=2, head_dim=64, dtype=torch.bfloat16)
    quantize_gpt_oss_mxfp4(model_dir)
    dense_experts = 4 * 8 * 3 * 1024 * 1024 * 4  # 4 layers, 8 experts, fp32 run dtype
    out = os.path.join(work, "wide.safetensors")
    args = ["forward", model_dir, "--ids", ",".join(map(str, IDS)), "--out", out, "--dtype", "fp32"]
    (packed, _), (dense, _) = peak_rss(*args), peak_rss(*args, "--dequantize")
    if dense - packed < 0.6 * dense_experts:
        failures.append(f"peak RSS packed {packed / 1e6:.0f} MB vs dequantised {dense / 1e6:.0f} MB: expected a saving of "
                        f"most of the {dense_experts / 1e6:.0f} MB of dense experts")
    plans = {}
    for mode, extra in (("packed", []), ("dequantized", ["--dequantize"])):
        _, text = moeforge(*args, "--verbose", *extra)
        match = re.search(r"memory plan for .*?: weights ([0-9.]+) GB", text)
        plans[mode] = float(match.group(1)) * 1e9 if match else None
    if None in plans.values() or plans["dequantized"] - plans["packed"] < 0.9 * dense_experts * (1 - 17 / 128):
        failures.append(f"memory plans (weights): packed {plans['packed']}, dequantised {plans['dequantized']}")
    print(f"  peak RSS: packed {packed / 1e6:.0f} MB, dequantised {dense / 1e6:.0f} MB "
          f"(dense experts {dense_experts / 1e6:.0f} MB); plans {plans}")


def main():
    start = time.time()
    failures = []
    work = tempfile.mkdtemp(prefix="moeforge_mxfp4_")
    try:
        model_dir = os.path.join(work, "gpt_oss")
        build_tiny_model("gpt_oss", model_dir)
        quantize_gpt_oss_mxfp4(model_dir)
        save_small_tokenizer(model_dir)
        with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
            json.dump({"eos_token": "<|endoftext|>"}, f)
        check_forward(model_dir, failures)
        check_stats_and_eval(work, model_dir, failures)
        check_memory(work, failures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_mxfp4_packed", failures, start, "packed MXFP4 experts equal the dequantised runs")


if __name__ == "__main__":
    sys.exit(main())
