"""Parity: `moeforge info --json` against tiny random models of every family built by transformers.
Checks layers, experts, top-k, vocab, hidden, total/active parameters, tying, MoE layer pattern,
sliding windows and dtypes; plus a GPT-OSS model with MXFP4 experts and a bf16 model.
Exit 0 = pass. Env: MOEFORGE_BIN (the binary)."""
import json
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import (FAMILIES, build_tiny_model, mxfp4_dequantize, quantize_gpt_oss_mxfp4,  # noqa: E402
                      truth)
from moeforge_cli import run_moeforge  # noqa: E402
failures = []


def info(model_dir):
    result = run_moeforge("info", model_dir, "--json", check=False)
    if result.returncode != 0:
        raise RuntimeError(f"moeforge info {model_dir} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def expect(label, key, got, want):
    if got != want:
        failures.append(f"{label}: {key} = {got!r}, expected {want!r}")


def expected_windows(model):
    """Per-layer sliding window as the transformers modules will apply it."""
    config = model.config
    if config.model_type == "gpt_neo":
        return [config.window_size if kind == "local" else 0 for kind in config.attention_layers]
    layers = model.model.layers
    out = []
    for layer in layers:
        window = getattr(layer.self_attn, "sliding_window", None)
        if config.model_type in ("mistral", "mixtral", "qwen3_moe"):  # one mask for the whole model
            window = config.sliding_window
        out.append(window or 0)
    return out


def moe_layers(model):
    if model.config.model_type == "gpt_neo":
        return []
    return [i for i, layer in enumerate(model.model.layers)
            if any(".experts." in n for n, _ in layer.named_parameters(prefix="x"))]


def check_family(family, root):
    model_dir = os.path.join(root, family)
    model = build_tiny_model(family, model_dir)
    want = truth(model)
    got = info(model_dir)
    for key, value in want.items():
        expect(family, key, got[key], value)
    expect(family, "family", got["family"], family)
    expect(family, "moe_layers", got.get("moe", {}).get("moe_layers", []), moe_layers(model))
    expect(family, "sliding_window", got["sliding_window"], expected_windows(model))
    expect(family, "dtypes", set(got["dtypes"]), {"F32"})
    expect(family, "warnings", got["warnings"], [])
    return got, want


def check_gpt_oss_mxfp4(root):
    model_dir = os.path.join(root, "gpt_oss_mxfp4")
    model = build_tiny_model("gpt_oss", model_dir, seed=1)
    want = truth(model)
    tensors = quantize_gpt_oss_mxfp4(model_dir)
    # The test's own quantiser must agree with transformers' dequantiser (same convention).
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    name = "model.layers.0.mlp.experts.gate_up_proj"
    ours = mxfp4_dequantize(tensors[name + "_blocks"], tensors[name + "_scales"]).transpose(1, 2)
    theirs = convert_moe_packed_tensors(tensors[name + "_blocks"], tensors[name + "_scales"], dtype=torch.float32)
    if not torch.equal(ours, theirs):
        failures.append("gpt_oss_mxfp4: test quantiser disagrees with transformers' convert_moe_packed_tensors")
    original = model.model.layers[0].mlp.experts.gate_up_proj.detach()
    error = (theirs - original).abs().max().item()
    if error > 0.25 * original.abs().max().item():
        failures.append(f"gpt_oss_mxfp4: dequantised experts far from the originals (max error {error})")
    got = info(model_dir)
    for key, value in want.items():
        expect("gpt_oss_mxfp4", key, got[key], value)
    expect("gpt_oss_mxfp4", "expert_layout", got["moe"]["expert_layout"], "mxfp4")
    expect("gpt_oss_mxfp4", "dtypes", set(got["dtypes"]), {"F32", "U8", "BF16"})
    # What stats/eval hold by default: the experts' blocks and scales as stored, the rest in bf16.
    packed = sum(t.numel() for n, t in tensors.items() if n.endswith(("_blocks", "_scales")))
    expert_weights = sum(t.numel() * 2 for n, t in tensors.items() if n.endswith("_blocks"))
    expect("gpt_oss_mxfp4", "bf16_packed_mxfp4_weight_bytes", got["memory"]["bf16_packed_mxfp4_weight_bytes"],
           (want["total_params"] - expert_weights) * 2 + packed)
    return got, want


def check_bf16(root):
    model_dir = os.path.join(root, "qwen3_moe_bf16")
    model = build_tiny_model("qwen3_moe", model_dir, dtype=torch.bfloat16)
    want = truth(model)
    got = info(model_dir)
    for key in ("total_params", "active_params"):
        expect("qwen3_moe_bf16", key, got[key], want[key])
    expect("qwen3_moe_bf16", "dtypes", set(got["dtypes"]), {"BF16"})
    expect("qwen3_moe_bf16", "bf16_weight_bytes", got["memory"]["bf16_weight_bytes"], 2 * want["total_params"])
    return got, want


def check_errors(root):
    """A broken checkpoint must fail with a message naming the tensor."""
    import shutil
    from safetensors.torch import load_file, save_file
    model_dir = os.path.join(root, "broken")
    shutil.copytree(os.path.join(root, "mixtral"), model_dir)
    path = os.path.join(model_dir, "model.safetensors")
    tensors = load_file(path)
    del tensors["model.layers.1.block_sparse_moe.experts.3.w2.weight"]
    save_file(tensors, path, metadata={"format": "pt"})
    result = run_moeforge("info", model_dir, "--json", check=False)
    if result.returncode == 0 or "missing tensor 'model.layers.1.block_sparse_moe.experts.3.w2.weight'" not in result.stderr:
        failures.append(f"broken mixtral: expected a missing-tensor error, got rc={result.returncode} {result.stderr!r}")


def main():
    start = time.time()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="moeforge-info-") as root:
        for family in FAMILIES:
            try:
                got, want = check_family(family, root)
                rows.append((family, got, want))
            except Exception as e:  # keep going: report every family
                failures.append(f"{family}: {e}")
        for label, check in (("gpt_oss_mxfp4", check_gpt_oss_mxfp4), ("qwen3_moe_bf16", check_bf16)):
            try:
                got, want = check(root)
                rows.append((label, got, want))
            except Exception as e:
                failures.append(f"{label}: {e}")
        try:
            check_errors(root)
        except Exception as e:
            failures.append(f"errors: {e}")
    print(f"{'model':<16}{'layers':>7}{'experts':>8}{'top_k':>6}{'total':>10}{'active':>10}  layout")
    for label, got, want in rows:
        layout = got.get("moe", {}).get("expert_layout", "-")
        print(f"{label:<16}{got['num_layers']:>7}{got['num_experts']:>8}{got['top_k']:>6}"
              f"{got['total_params']:>10}{got['active_params']:>10}  {layout}")
    print(f"{len(rows)} models checked in {time.time() - start:.1f} s")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
