"""MoE layer benchmark: moeforge's sorted-dispatch layer vs transformers' own Mixtral MoE block with
each experts implementation it offers (eager, batched_mm, grouped_mm), same torch, same run, CPU,
2 threads, fp32 or bf16 (`--dtype`). Prints the CPU's capability (AVX2 / AVX512 / AVX512-BF16 / AMX),
GFLOP/s and ratios for forward and forward+backward, and moeforge's ratio to a GEMM of the same FLOPs in
the same dtype (the machine's own limit, measured in the same run). moeforge runs twice: the per-expert loop (its CPU default, used for
the ratios) and torch's grouped GEMM (its CUDA default; `--gemm grouped` of the bench binary).

    .venv/bin/python bench/moe_layer_bench.py --build build [--iters 10] [--dtype bf16 --tokens 256]

Targets (issues 3, 6 and 19): forward >= 1.5x the fastest peer and >= 0.85x the GEMM rate; forward+backward
>= 2x the fastest peer and >= 0.5x the GEMM rate (3x the forward FLOPs), in both dtypes. Without
AVX512-BF16/AMX a bf16 GEMM runs in software (slow): use fewer --tokens there.
"""
import argparse
import json
import os
import subprocess
import time

import torch
import transformers

SHAPES = [dict(tokens=2048, hidden=512, ffn=1024, experts=8, topk=2),
          dict(tokens=2048, hidden=512, ffn=256, experts=64, topk=8)]
IMPLEMENTATIONS = ["eager", "batched_mm", "grouped_mm"]


def best_time(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_capability():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    extra = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16")) if flag in flags]
    return torch.backends.cpu.get_cpu_capability() + (" + " + " + ".join(extra) if extra else " (no AVX512-BF16/AMX)")


def peer_times(shape, implementation, warmup, iters, dtype):
    config = transformers.MixtralConfig(hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
                                        num_local_experts=shape["experts"], num_experts_per_tok=shape["topk"])
    config._experts_implementation = implementation
    torch.manual_seed(0)
    block = transformers.models.mixtral.modeling_mixtral.MixtralSparseMoeBlock(config).to(dtype)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.02)
    x = torch.randn(1, shape["tokens"], shape["hidden"], dtype=dtype)

    def forward():
        with torch.no_grad():
            block(x)

    xg = x.clone().requires_grad_()
    upstream = torch.randn_like(x)

    def forward_backward():
        out = block(xg)
        out.backward(upstream)
        block.zero_grad(set_to_none=True)
        xg.grad = None

    return best_time(forward, warmup, iters), best_time(forward_backward, warmup, iters)


def available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def peer_memory_bytes(shape, implementation, element_bytes):
    """batched_mm gathers each routed token's expert weights ([T*k, 2F, H] + [T*k, H, F], fp32, and
    their gradients): estimate it so a shape this machine cannot hold is skipped, not OOM-killed."""
    if implementation != "batched_mm":
        return 0
    per_token = 3 * shape["ffn"] * shape["hidden"] * element_bytes
    return 2 * shape["tokens"] * shape["topk"] * per_token


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build")
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--tokens", type=int, default=0, help="override the shapes' 2048 tokens")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(2)
    binary = os.path.join(args.build, "bench", "moe_layer_bench")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, 2 threads, {args.dtype}, best of {args.iters}; "
          f"CPU: {cpu_capability()}")
    for shape in SHAPES:
        if args.tokens:
            shape = dict(shape, tokens=args.tokens)
        ours = {}
        for gemm in ("loop", "grouped"):  # the per-expert loop (CPU default) and torch's grouped GEMM (CUDA default)
            cmd = [binary]
            for key, value in shape.items():
                cmd += [f"--{key}", str(value)]
            cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup), "--threads", "2", "--gemm", gemm, "--dtype", args.dtype]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode == 0:
                ours[gemm] = json.loads(result.stdout)
        mine = ours["loop"]
        flops = mine["expert_flops"]
        label = "T={tokens} H={hidden} F={ffn} E={experts} k={topk}".format(**shape)
        print(f"\n{label}  (expert FLOPs forward {flops / 1e9:.2f} G)")
        print(f"  {'implementation':<22}{'fwd GFLOP/s':>12}{'fwd+bwd GFLOP/s':>17}{'bwd/fwd':>9}")
        peers = {}
        for implementation in IMPLEMENTATIONS:
            need = peer_memory_bytes(shape, implementation, 2 if args.dtype == "bf16" else 4)
            if need > 0.6 * available_bytes():
                print(f"  transformers {implementation:<9} skipped: needs ~{need / 2**30:.0f} GiB "
                      f"(per-token expert weights), {available_bytes() / 2**30:.0f} GiB available")
                continue
            try:
                fwd, fb = peer_times(shape, implementation, args.warmup, args.iters, dtype)
            except Exception as error:  # an implementation this torch/CPU cannot run
                print(f"  transformers {implementation:<9} unavailable: {str(error).splitlines()[0][:60]}")
                continue
            peers[implementation] = (fwd, fb)
            print(f"  transformers {implementation:<9}{flops / fwd / 1e9:>12.1f}{3 * flops / fb / 1e9:>17.1f}{(fb - fwd) / fwd:>9.2f}")
        for gemm, run in ours.items():
            f, b = run["forward_s"], run["forward_backward_s"]
            print(f"  {'moeforge (' + gemm + ')':<22}{flops / f / 1e9:>12.1f}{3 * flops / b / 1e9:>17.1f}{(b - f) / f:>9.2f}")
        fwd, fb = mine["forward_s"], mine["forward_backward_s"]
        print(f"  {'libtorch ' + args.dtype + ' GEMM':<22}{flops / mine['gemm_s'] / 1e9:>12.1f}")
        if peers:
            best_fwd = min(v[0] for v in peers.values())
            best_fb = min(v[1] for v in peers.values())
            print(f"  ratio forward vs fastest peer:          {best_fwd / fwd:.2f}x (target >= 1.5)")
            print(f"  ratio forward+backward vs fastest peer: {best_fb / fb:.2f}x (target >= 2)")
        print(f"  ratio forward vs GEMM rate:             {mine['gemm_s'] / fwd:.2f} (target >= 0.85)")
        print(f"  ratio forward+backward vs GEMM rate:    {3 * mine['gemm_s'] / fb:.2f} (target >= 0.5)")
        if args.dtype == "bf16":  # without 16-bit hardware moeforge computes in fp32: that rate is its limit then
            print(f"  {'libtorch fp32 GEMM':<22}{flops / mine['gemm_fp32_s'] / 1e9:>12.1f}   (forward {mine['gemm_fp32_s'] / fwd:.2f}, "
                  f"forward+backward {3 * mine['gemm_fp32_s'] / fb:.2f} of it)")


if __name__ == "__main__":
    main()
