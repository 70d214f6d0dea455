"""Parity: `moeforge forward` logits and router logits against transformers (CPU, fp32) for a tiny
random model of every family, plus GPT-OSS with MXFP4 experts (reference = transformers running the
same dequantised values). Tolerance: max |diff| <= 1e-4. Exit 0 = pass. Env: MOEFORGE_BIN."""
import os
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import FAMILIES, VARIANTS, build_tiny_model, mxfp4_dequantize, quantize_gpt_oss_mxfp4  # noqa: E402
from moeforge_cli import BIN, run_moeforge  # noqa: E402

TOLERANCE = 1e-4
SEQUENCE = 40  # longer than every tiny sliding window (8/16) so windows matter
failures = []
torch.set_num_threads(2)


def moeforge_forward(model_dir, ids, extra=()):
    out = os.path.join(model_dir, "forward.safetensors")
    args = ["forward", model_dir, "--ids", ",".join(map(str, ids)), "--out", out, *extra]
    result = run_moeforge(*args, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join([BIN, *args])} failed: {result.stderr.strip()}")
    return load_file(out)


def reference(model, ids):
    with torch.no_grad():
        kwargs = {"output_router_logits": True} if hasattr(model.config, "output_router_logits") else {}
        out = model(torch.tensor([ids]), **kwargs)
    router = getattr(out, "router_logits", None) or ()
    return out.logits[0].float(), [r.reshape(-1, r.shape[-1]).float() for r in router]


def moe_layer_indices(model):
    layers = model.model.layers
    return [i for i, layer in enumerate(layers) if hasattr(layer.mlp, "gate") or hasattr(layer.mlp, "router")]


def compare(label, model, model_dir, ids):
    ref_logits, ref_router = reference(model, ids)
    got = moeforge_forward(model_dir, ids)
    diff = (got["logits"] - ref_logits).abs().max().item()
    if got["logits"].shape != ref_logits.shape or diff > TOLERANCE:
        failures.append(f"{label}: logits max diff {diff:.3g} (shape {tuple(got['logits'].shape)} vs {tuple(ref_logits.shape)})")
    moe_layers = moe_layer_indices(model) if ref_router else []
    for layer, ref in zip(moe_layers, ref_router):
        name = f"router_logits.{layer}"
        if name not in got:
            failures.append(f"{label}: missing {name}")
            continue
        rdiff = (got[name] - ref).abs().max().item()
        if rdiff > TOLERANCE:
            failures.append(f"{label}: {name} max diff {rdiff:.3g}")
    router_count = sum(1 for k in got if k.startswith("router_logits."))
    if router_count != len(ref_router):
        failures.append(f"{label}: {router_count} router_logits tensors, transformers has {len(ref_router)}")
    print(f"  {label:<14} logits max diff {diff:.2e}, {len(ref_router)} router layers")


def main():
    start = time.time()
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 300, (SEQUENCE,), generator=generator).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            model_dir = os.path.join(tmp, family)
            model = build_tiny_model(family, model_dir)
            try:
                compare(family, model, model_dir, ids)
            except Exception as error:  # noqa: BLE001 - report every family
                failures.append(f"{family}: {error}")
        for label, family, overrides in VARIANTS:  # other configurations of a family (families.VARIANTS)
            model_dir = os.path.join(tmp, label)
            model = build_tiny_model(family, model_dir, **overrides)
            try:
                compare(label, model, model_dir, ids)
            except Exception as error:  # noqa: BLE001
                failures.append(f"{label}: {error}")
        # GPT-OSS with MXFP4 experts: transformers runs the dequantised values as bf16-free fp32.
        model_dir = os.path.join(tmp, "gpt_oss_mxfp4")
        model = build_tiny_model("gpt_oss", model_dir)
        tensors = quantize_gpt_oss_mxfp4(model_dir)
        state = model.state_dict()
        with torch.no_grad():
            for name in list(state):
                if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
                    values = mxfp4_dequantize(tensors[name + "_blocks"], tensors[name + "_scales"])  # [E, out, in]
                    state[name].copy_(values.transpose(1, 2))
                elif name.endswith("_proj_bias") and ".mlp.experts." in name:
                    state[name].copy_(tensors[name].float())
        try:
            compare("gpt_oss_mxfp4", model, model_dir, ids)
        except Exception as error:  # noqa: BLE001
            failures.append(f"gpt_oss_mxfp4: {error}")
    elapsed = time.time() - start
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"forward parity: {len(FAMILIES) + len(VARIANTS) + 1} models match transformers within {TOLERANCE} ({elapsed:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
