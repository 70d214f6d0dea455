#!/usr/bin/env python3
"""Streaming surgery on a GPT-OSS-shaped checkpoint with MXFP4 experts, against `cp` in the same run.

Usage (from the repository root):
    .venv/bin/python bench/surgery_bench.py --moeforge build/moeforge [--layers 4,2] [--vocab 32000] [--dir /tmp]

Builds a synthetic checkpoint per size in --layers (GPT-OSS-20b per-layer shapes: hidden =
intermediate = 2880, 32 experts, head_dim 64, 64 query / 8 kv heads; MXFP4 expert blocks/scales,
bf16 elsewhere; a smaller vocabulary keeps the files at ~0.5 GB per layer + embeddings), written in
chunks (one shard per layer) with random bytes. Then, per size:
  cp       `cp -r SRC DST && sync DST/*` (same durability as moeforge, which fsyncs its shards)
  shared   `moeforge add-shared-expert SRC --init pca_top4 --plan PLAN` (dequantises 4 experts/layer)
  grow     `moeforge grow SRC --clone '*:0,*:1,*:2,*:3' --no-verify` (+4 MXFP4 clones per layer)
Reports, for each, output bytes / wall seconds, the ratio to cp's throughput (target >= 0.5) and the
peak RSS from /usr/bin/time -v (target <= 1.5 GB + 2 x the largest changed tensor), and shows peak
RSS does not grow with the number of layers. Free disk is checked first; every file is deleted at
the end (including on failure).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

H = F = 2880
E = 32
HEADS, KV_HEADS, HEAD_DIM = 64, 8, 64


def bf16_random(rng, count, std=0.02):
    values = (rng.standard_normal(count, dtype=np.float32) * std).view(np.uint32)
    return (values >> 16).astype(np.uint16)


def layer_tensors(l, experts=E):
    """(name, dtype, shape) of one GPT-OSS layer with MXFP4 experts (GPT-OSS-20B: 32, 120B: 128)."""
    p = f"model.layers.{l}."
    return [
        (p + "input_layernorm.weight", "BF16", [H]),
        (p + "post_attention_layernorm.weight", "BF16", [H]),
        (p + "self_attn.q_proj.weight", "BF16", [HEADS * HEAD_DIM, H]),
        (p + "self_attn.q_proj.bias", "BF16", [HEADS * HEAD_DIM]),
        (p + "self_attn.k_proj.weight", "BF16", [KV_HEADS * HEAD_DIM, H]),
        (p + "self_attn.k_proj.bias", "BF16", [KV_HEADS * HEAD_DIM]),
        (p + "self_attn.v_proj.weight", "BF16", [KV_HEADS * HEAD_DIM, H]),
        (p + "self_attn.v_proj.bias", "BF16", [KV_HEADS * HEAD_DIM]),
        (p + "self_attn.o_proj.weight", "BF16", [H, HEADS * HEAD_DIM]),
        (p + "self_attn.o_proj.bias", "BF16", [H]),
        (p + "self_attn.sinks", "BF16", [HEADS]),
        (p + "mlp.router.weight", "BF16", [experts, H]),
        (p + "mlp.router.bias", "BF16", [experts]),
        (p + "mlp.experts.gate_up_proj_blocks", "U8", [experts, 2 * F, H // 32, 16]),
        (p + "mlp.experts.gate_up_proj_scales", "U8", [experts, 2 * F, H // 32]),
        (p + "mlp.experts.gate_up_proj_bias", "BF16", [experts, 2 * F]),
        (p + "mlp.experts.down_proj_blocks", "U8", [experts, H, F // 32, 16]),
        (p + "mlp.experts.down_proj_scales", "U8", [experts, H, F // 32]),
        (p + "mlp.experts.down_proj_bias", "BF16", [experts, H]),
    ]


def write_shard(path, tensors, rng):
    """Writes a safetensors file tensor by tensor (never more than one tensor in memory)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in tensors:
        size = int(np.prod(shape)) * (2 if dtype == "BF16" else 1)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for name, dtype, shape in tensors:
            count = int(np.prod(shape))
            if name.endswith("_scales"):
                data = rng.integers(118, 124, count, dtype=np.uint8)
            elif dtype == "U8":
                data = rng.integers(0, 256, count, dtype=np.uint8)
            elif "layernorm" in name or name.endswith("norm.weight"):
                data = np.full(count, 0x3F80, dtype=np.uint16)  # 1.0
            else:
                data = bf16_random(rng, count)
            f.write(data.tobytes())
    return offset


def build_model(path, layers, vocab, seed=0, experts=E):
    os.makedirs(path)
    rng = np.random.default_rng(seed)
    shards, weight_map, total = [], {}, 0
    groups = [[("model.embed_tokens.weight", "BF16", [vocab, H])]] + [layer_tensors(l, experts) for l in range(layers)]
    groups[-1] += [("model.norm.weight", "BF16", [H]), ("lm_head.weight", "BF16", [vocab, H])]
    for i, group in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        total += write_shard(os.path.join(path, name), group, rng)
        for tensor, _, _ in group:
            weight_map[tensor] = name
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(path, "model.safetensors.index.json"), "w"))
    config = {
        "model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": H, "intermediate_size": F,
        "num_hidden_layers": layers, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "vocab_size": vocab, "num_local_experts": experts, "num_experts_per_tok": 4, "sliding_window": 128,
        "layer_types": ["sliding_attention" if l % 2 == 0 else "full_attention" for l in range(layers)],
        "rms_norm_eps": 1e-5, "max_position_embeddings": 131072, "tie_word_embeddings": False,
        "quantization_config": {"quant_method": "mxfp4"},
    }
    json.dump(config, open(os.path.join(path, "config.json"), "w"), indent=2)
    plan = {"version": 1, "model": {"model_type": "gpt_oss", "num_layers": layers, "num_experts": experts, "hidden_size": H},
            "importance": {str(l): rng.random(experts).tolist() for l in range(layers)}}
    json.dump(plan, open(os.path.join(path, "..", f"plan{layers}.json"), "w"))
    return total


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def timed(cmd, shell=False):
    """Runs under /usr/bin/time -v; returns (seconds, peak RSS bytes)."""
    full = ["/usr/bin/time", "-v", "sh", "-c", cmd] if shell else ["/usr/bin/time", "-v", *cmd]
    start = time.perf_counter()
    result = subprocess.run(full, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return elapsed, rss_kb * 1024


def gb(x):
    return f"{x / 1e9:.2f} GB"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--layers", default="4,2", help="model sizes (layers), comma-separated")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", default="/tmp")
    args = parser.parse_args()
    sizes = [int(x) for x in args.layers.split(",")]
    per_layer = 0.48e9
    need = max(sizes) * per_layer * 4 + 4 * args.vocab * H * 2 + 1e9
    free = shutil.disk_usage(args.dir).free
    print(f"free disk in {args.dir}: {gb(free)}; need about {gb(need)}")
    if free < need:
        print("not enough free disk; lower --layers or choose another --dir")
        return 1
    work = tempfile.mkdtemp(prefix="surgery_bench_", dir=args.dir)
    rows = []
    try:
        for layers in sizes:
            src = os.path.join(work, f"gptoss_{layers}l")
            t0 = time.perf_counter()
            size = build_model(src, layers, args.vocab)
            print(f"\n{layers} layers: wrote {gb(size)} synthetic MXFP4 checkpoint in {time.perf_counter() - t0:.1f}s")
            subprocess.run(f"cat {src}/*.safetensors > /dev/null", shell=True, check=True)  # both sides read from cache
            largest_grown = E + 4
            largest_changed = largest_grown * 2 * F * (H // 32) * 16  # grown gate_up_proj_blocks
            runs = [
                ("cp", f"cp -r {src} {work}/cp_out && sync {work}/cp_out/*", True, f"{work}/cp_out"),
                ("shared pca_top4", [args.moeforge, "add-shared-expert", src, "--init", "pca_top4", "--plan",
                                     f"{work}/plan{layers}.json", "--out", f"{work}/shared_out"], False, f"{work}/shared_out"),
                ("grow +4", [args.moeforge, "grow", src, "--clone", "*:0,*:1,*:2,*:3", "--no-verify", "--out",
                             f"{work}/grow_out"], False, f"{work}/grow_out"),
            ]
            cp_rate = None
            for label, cmd, shell, out in runs:
                seconds, rss = timed(cmd, shell)
                written = dir_bytes(out)
                rate = written / seconds
                cp_rate = cp_rate or rate
                target = 1.5e9 + 2 * largest_changed
                rows.append((layers, label, written, seconds, rate / cp_rate, rss, target))
                print(f"  {label:<16} {gb(written)} in {seconds:6.2f}s = {rate / 1e9:.2f} GB/s, "
                      f"ratio to cp {rate / cp_rate:.2f}, peak RSS {rss / 1e6:.0f} MB"
                      + ("" if label == "cp" else f" (target <= {target / 1e6:.0f} MB)"))
                shutil.rmtree(out)
            shutil.rmtree(src)
        print("\nsummary (ratio = throughput / cp throughput in the same run; RSS = peak resident set):")
        for layers, label, written, seconds, ratio, rss, target in rows:
            if label != "cp":
                ok = "ok" if ratio >= 0.5 and rss <= target else "MISSED"
                print(f"  {layers} layers {label:<16} ratio {ratio:.2f} (>= 0.5), peak RSS {rss / 1e6:.0f} MB "
                      f"(<= {target / 1e6:.0f} MB) {ok}")
        for label in ["shared pca_top4", "grow +4"]:
            by_size = {layers: rss for layers, l, _, _, _, rss, _ in rows if l == label}
            print(f"  {label}: peak RSS by layers {', '.join(f'{k}: {v / 1e6:.0f} MB' for k, v in sorted(by_size.items()))}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
