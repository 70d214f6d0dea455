"""CUDA check (run on a GPU machine by tools/gpu_check.sh; not part of ctest, CI has no GPU).
For every family: `moeforge forward --device cuda` (fp32) against transformers on the same GPU and
against our CPU run, and its grouped-GEMM experts (the CUDA default) against `--expert-gemm loop`; bf16 on CUDA against fp32 within bf16 tolerance; and `moeforge eval` on CUDA vs CPU.

    MOEFORGE_BIN=build/moeforge python3 tests/gpu/cuda_check.py
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parity"))
from families import FAMILIES, build_tiny_model, quantize_gpt_oss_mxfp4  # noqa: E402

BIN = os.environ.get("MOEFORGE_BIN", "build/moeforge")
IDS = [3, 17, 42, 9, 100, 7, 250, 8, 61, 33, 12, 5, 77, 140, 2, 19]


def forward(model_dir, device, dtype="fp32", gemm="auto"):
    out = os.path.join(model_dir, f"fwd-{device}-{dtype}-{gemm}.safetensors")
    cmd = [BIN, "forward", model_dir, "--ids", ",".join(map(str, IDS)), "--out", out, "--device", device, "--dtype", dtype,
           "--expert-gemm", gemm]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return load_file(out)


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(f, f) for f in FAMILIES] + [("gpt_oss_mxfp4", "gpt_oss")]
        for label, family in cases:
            d = os.path.join(tmp, label)
            model = build_tiny_model(family, d)
            if label.endswith("mxfp4"):
                quantize_gpt_oss_mxfp4(d)
                model = None
            try:
                cpu = forward(d, "cpu")
                gpu = forward(d, "cuda")
                bf16 = forward(d, "cuda", "bf16")
                cpu_bf16 = forward(d, "cpu", "bf16")
                gpu_loop = forward(d, "cuda", "fp32", "loop")  # the default on CUDA is the grouped GEMM
            except RuntimeError as e:
                failures.append(f"{label}: {e}")
                continue
            diff = (gpu["logits"] - cpu["logits"]).abs().max().item()
            bdiff = (bf16["logits"].float() - cpu["logits"]).abs().max().item()
            # bf16 vs fp32 may flip a near-tied top-k choice (MXFP4 experts especially), so the CUDA
            # bf16 run is held to the CPU bf16 run, and to fp32 only loosely.
            bbdiff = (bf16["logits"].float() - cpu_bf16["logits"].float()).abs().max().item()
            scale = cpu["logits"].abs().max().item()
            line = f"{label:14s} cuda-fp32 vs cpu {diff:.2e}   cuda-bf16 vs cpu-fp32 {bdiff:.2e} vs cpu-bf16 {bbdiff:.2e} (|logits| max {scale:.2f})"
            if model is not None:
                with torch.no_grad():
                    ref = model.cuda()(torch.tensor([IDS], device="cuda")).logits[0].float().cpu()
                tdiff = (gpu["logits"] - ref).abs().max().item()
                line += f"   vs transformers-cuda {tdiff:.2e}"
                if tdiff > 1e-3:
                    failures.append(f"{label}: cuda logits differ from transformers on cuda by {tdiff}")
            print(line, flush=True)
            if diff > 1e-3:
                failures.append(f"{label}: cuda fp32 logits differ from cpu by {diff}")
            gdiff = (gpu["logits"] - gpu_loop["logits"]).abs().max().item()
            if gdiff > 1e-4:
                failures.append(f"{label}: cuda grouped-GEMM logits differ from the per-expert loop by {gdiff}")
            if bbdiff > 0.05 * max(scale, 1.0) or bdiff > 0.5 * max(scale, 1.0):
                failures.append(f"{label}: cuda bf16 logits differ from cpu bf16 by {bbdiff} (from fp32 by {bdiff})")
            for k in cpu:
                if k.startswith("router_logits.") and (gpu[k] - cpu[k]).abs().max().item() > 1e-3:
                    failures.append(f"{label}: {k} differs between cuda and cpu")
    for f in failures:
        print("FAIL:", f)
    print("cuda check:", "FAILED" if failures else "passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
