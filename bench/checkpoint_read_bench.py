#!/usr/bin/env python3
"""Reading every tensor of a multi-GB sharded checkpoint vs `cat` of the same files, warm cache.

Usage (from the repository root):
    .venv/bin/python bench/checkpoint_read_bench.py --moeforge build/moeforge \
        [--gib 2] [--shard-mb 500] [--rounds 3] [--dir /tmp]

Writes a random bf16 Mixtral-layout checkpoint of about --gib GiB (hidden 1024, 8 experts of width
2048, as many layers as fit; ~31 tensors per layer) as --shard-mb shards with an index into a
temporary directory under --dir (removed afterwards), reads it once to warm the page cache, then
times, best of --rounds each:
  cat       `cat SHARDS > /dev/null`
  moeforge  `moeforge info DIR --verify` (opens the store, validates it against config.json, reads
            every tensor through the mapping: XXH64 per tensor + NaN/Inf count)
Both are whole-process wall times over the same bytes. The ratio is cat time / moeforge time
(>= 1 means moeforge is faster); the target is >= 0.8x.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TARGET = 0.8
HIDDEN, INTER, EXPERTS, TOP_K, HEADS, KV_HEADS, VOCAB = 1024, 2048, 8, 2, 16, 4, 32000


def layer_tensors(i):
    head_dim = HIDDEN // HEADS
    p = f"model.layers.{i}."
    out = [(p + "input_layernorm.weight", [HIDDEN]),
           (p + "post_attention_layernorm.weight", [HIDDEN]),
           (p + "self_attn.q_proj.weight", [HEADS * head_dim, HIDDEN]),
           (p + "self_attn.k_proj.weight", [KV_HEADS * head_dim, HIDDEN]),
           (p + "self_attn.v_proj.weight", [KV_HEADS * head_dim, HIDDEN]),
           (p + "self_attn.o_proj.weight", [HIDDEN, HEADS * head_dim]),
           (p + "block_sparse_moe.gate.weight", [EXPERTS, HIDDEN])]
    for e in range(EXPERTS):
        q = f"{p}block_sparse_moe.experts.{e}."
        out += [(q + "w1.weight", [INTER, HIDDEN]), (q + "w2.weight", [HIDDEN, INTER]), (q + "w3.weight", [INTER, HIDDEN])]
    return out


def model_tensors(gib):
    """(name, shape) of a Mixtral with as many layers as fit in `gib` GiB of bf16 (at least 1)."""
    outer = [("model.embed_tokens.weight", [VOCAB, HIDDEN]), ("model.norm.weight", [HIDDEN]),
             ("lm_head.weight", [VOCAB, HIDDEN])]
    size = lambda ts: sum(2 * int(np.prod(s)) for _, s in ts)  # noqa: E731
    layers = max(1, int((gib * 2**30 - size(outer)) // size(layer_tensors(0))))
    tensors = outer[:1] + [t for i in range(layers) for t in layer_tensors(i)] + outer[1:]
    return layers, tensors


def write_checkpoint(directory, gib, shard_mb, seed=0):
    """Writes the checkpoint shard by shard (header + raw little-endian bf16), streaming from a
    pool of random values so memory stays small. Returns (layers, tensor count, shard paths)."""
    layers, tensors = model_tensors(gib)
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(16 << 20, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    pool = pool.astype(np.uint16)  # bf16 bit patterns (truncated), all finite
    shards, current, current_bytes = [], [], 0
    for name, shape in tensors:
        nbytes = 2 * int(np.prod(shape))
        if current and current_bytes + nbytes > shard_mb * 1e6:
            shards.append(current)
            current, current_bytes = [], 0
        current.append((name, shape, nbytes))
        current_bytes += nbytes
    shards.append(current)
    weight_map, paths, cursor = {}, [], 0
    for k, shard in enumerate(shards):
        file_name = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, nbytes in shard:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file_name
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        path = os.path.join(directory, file_name)
        with open(path, "wb") as f:
            f.write(len(blob).to_bytes(8, "little") + blob)
            for name, shape, nbytes in shard:
                count = nbytes // 2
                while count:
                    start = cursor % (pool.size - 1)
                    n = min(count, pool.size - start)
                    f.write(pool[start:start + n].tobytes())
                    count -= n
                    cursor += n * 7 + 1
        paths.append(path)
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(n for s in shards for _, _, n in s)}, "weight_map": weight_map}, f)
    config = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "hidden_size": HIDDEN,
              "intermediate_size": INTER, "num_hidden_layers": layers, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "num_local_experts": EXPERTS, "num_experts_per_tok": TOP_K,
              "vocab_size": VOCAB, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
              "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return layers, len(tensors), paths


def best_wall(cmd, rounds, **kwargs):
    best = float("inf")
    out = None
    for _ in range(rounds):
        start = time.perf_counter()
        out = subprocess.run(cmd, check=True, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--gib", type=float, default=2.0, help="checkpoint size in GiB")
    parser.add_argument("--shard-mb", type=float, default=500.0, help="shard size cap in MB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary checkpoint goes")
    args = parser.parse_args()

    need = args.gib * 2**30 * 1.05
    free = shutil.disk_usage(args.dir).free
    if free < need:
        sys.exit(f"checkpoint_read_bench: {args.dir} has {free / 2**30:.1f} GiB free, needs {need / 2**30:.1f} GiB")
    with tempfile.TemporaryDirectory(prefix="moeforge-read-bench-", dir=args.dir) as tmp:
        start = time.perf_counter()
        layers, count, shards = write_checkpoint(tmp, args.gib, args.shard_mb)
        total = sum(os.path.getsize(p) for p in shards)
        print(f"checkpoint: mixtral bf16, {layers} layers, {count} tensors, {len(shards)} shards, "
              f"{total / 2**30:.2f} GiB (written in {time.perf_counter() - start:.1f} s); "
              f"best of {args.rounds} rounds, warm cache", flush=True)
        for path in shards:  # warm the page cache
            with open(path, "rb") as f:
                while f.read(64 << 20):
                    pass
        cat_s, _ = best_wall(["cat", *shards], args.rounds, stdout=subprocess.DEVNULL)
        mf_s, out = best_wall([args.moeforge, "info", tmp, "--verify", "--json"], args.rounds,
                              stdout=subprocess.PIPE, text=True)
        report = json.loads(out.stdout)["verify"]
        if report["tensors"] != count or report["nan"] or report["inf"]:
            sys.exit(f"checkpoint_read_bench: moeforge read {report['tensors']} tensors (expected {count}), "
                     f"{report['nan']} NaN, {report['inf']} Inf")
        ratio = cat_s / mf_s
        print(f"{'reader':10} {'seconds':>8} {'MB/s':>9}")
        print(f"{'cat':10} {cat_s:8.3f} {total / cat_s / 1e6:9.0f}")
        print(f"{'moeforge':10} {mf_s:8.3f} {total / mf_s / 1e6:9.0f}   (read loop alone: "
              f"{report['bytes'] / report['seconds'] / 1e6:.0f} MB/s; checksum {report['checksum_xxh64']})")
        print(f"ratio moeforge/cat: {ratio:.2f}x (target >= {TARGET}x: {'met' if ratio >= TARGET else 'MISSED'})")


if __name__ == "__main__":
    main()
