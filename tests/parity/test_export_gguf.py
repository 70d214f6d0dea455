"""`moeforge export-gguf` against llama.cpp's own converter (convert_hf_to_gguf.py from the llama.cpp that
llama-cpp-python 0.3.36 vendors; llama_cpp_reference.py fetches it from PyPI). For every family, tiny
models built with transformers' classes and the real tokenizers (Llama-3, Llama-2 SentencePiece-style,
Qwen3, GPT-OSS o200k), both files are read back with the `gguf` package's reader and must hold the same
metadata (every key, type and value) and the same tensors (names, ggml types, dims and bytes), for
--type f32, f16, bf16 and q8_0; GPT-OSS MXFP4 experts stay MXFP4 and dequantise to transformers'
weights. Also: the embedded base and an upcycled MoE export; models llama.cpp cannot express, a
missing tokenizer and bad flags fail in one line before anything is written."""
import json
import os
import shutil
import struct
import sys
import tempfile
import time

import gguf
import numpy as np
import torch
import transformers
from tokenizers import Tokenizer

from families import build_tiny_model, quantize_gpt_oss_mxfp4
from llama_cpp_reference import convert
from moeforge_cli import finish, moeforge
from shared_data import shared_data_dir

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# (label, family, tokenizer, config overrides, MXFP4 experts, --type values)
CASES = [
    ("llama", "llama", "llama3", {}, False, ["f32", "f16", "bf16", "q8_0"]),
    ("llama_rope_llama3", "llama", "llama3",
     dict(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), False, ["f32"]),
    ("mistral", "mistral", "llama2", {}, False, ["f32"]),
    ("qwen2", "qwen2", "qwen3", {}, False, ["f32"]),
    ("qwen3_padded_vocab", "qwen3", "qwen3", dict(vocab_extra=7), False, ["f32"]),
    ("mixtral", "mixtral", "llama2", {}, False, ["f32", "q8_0"]),
    ("qwen2_moe", "qwen2_moe", "qwen3", dict(mlp_only_layers=[]), False, ["f32", "bf16", "q8_0"]),
    ("qwen3_moe", "qwen3_moe", "qwen3", dict(mlp_only_layers=[]), False, ["f32"]),
    ("olmoe", "olmoe", "llama3", dict(num_key_value_heads=4), False, ["f32"]),  # llama.cpp's olmoe has no GQA
    ("gpt_oss_mxfp4", "gpt_oss", "gptoss", {}, True, ["f32", "f16", "q8_0"]),
    ("gpt_oss_bf16", "gpt_oss", "gptoss", {}, False, ["bf16"]),
]


def read_gguf(path):
    """The `gguf` package's reader: metadata values and tensors."""
    reader = gguf.GGUFReader(path)
    kv = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            kv[key] = (f.types[-1].name, f.contents())
        else:
            kv[key] = (f.types[0].name, f.contents())
    return kv, {t.name: t for t in reader.tensors}


_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 39: (32, 17)}  # ggml type -> (values, bytes) per block


def raw_gguf(path):
    """Every metadata entry as (value type, its encoded bytes) and every tensor as (type, dims, data bytes),
    straight from the file's layout (the `gguf` reader needs ~10 s per file for 400k-entry token arrays, this
    well under one; test_export_gguf still reads its outputs with the `gguf` package below)."""
    with open(path, "rb") as f:
        buf = f.read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<IIQQ", buf, 0)
    assert magic == 0x46554747 and version == 3, f"{path}: not a GGUF v3 file"
    pos = 24

    def skip_string(p):
        (n,) = struct.unpack_from("<Q", buf, p)
        return p + 8 + n

    kv = {}
    for _ in range(n_kv):
        end = skip_string(pos)
        key = buf[pos + 8:end].decode()
        (vtype,) = struct.unpack_from("<I", buf, end)
        start = pos = end + 4
        if vtype == 8:
            pos = skip_string(pos)
        elif vtype == 9:
            etype, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if etype == 8:
                for _ in range(count):
                    pos = skip_string(pos)
            else:
                pos += _SCALAR_BYTES[etype] * count
        else:
            pos += _SCALAR_BYTES[vtype]
        kv[key] = (vtype, buf[start:pos])
    infos = []
    for _ in range(n_tensors):
        end = skip_string(pos)
        name = buf[pos + 8:end].decode()
        (n_dims,) = struct.unpack_from("<I", buf, end)
        dims = list(struct.unpack_from(f"<{n_dims}Q", buf, end + 4))
        ttype, offset = struct.unpack_from("<IQ", buf, end + 4 + 8 * n_dims)
        pos = end + 4 + 8 * n_dims + 12
        infos.append((name, ttype, dims, offset))
    data_start = (pos + 31) // 32 * 32
    tensors = {}
    for name, ttype, dims, offset in infos:
        values, nbytes = _BLOCK[ttype]
        size = int(np.prod(dims)) // values * nbytes
        tensors[name] = (ttype, dims, buf[data_start + offset:data_start + offset + size])
    return kv, tensors


def compare(label, reference, ours, failures):
    ref_kv, ref_t = raw_gguf(reference)
    our_kv, our_t = raw_gguf(ours)
    for key in sorted(set(ref_kv) | set(our_kv)):
        if ref_kv.get(key) != our_kv.get(key):
            show = lambda v: "absent" if v is None else f"type {v[0]}, {len(v[1])} bytes {v[1][:60]!r}"
            failures.append(f"{label}: key {key}: converter {show(ref_kv.get(key))} vs ours {show(our_kv.get(key))}")
    for name in sorted(set(ref_t) | set(our_t)):
        if name not in ref_t or name not in our_t:
            failures.append(f"{label}: tensor {name} only in {'ours' if name in our_t else 'the converter'}")
            continue
        (ta, da, ba), (tb, db, bb) = ref_t[name], our_t[name]
        if ta != tb or da != db:
            failures.append(f"{label}: {name}: converter type {ta} dims {da} vs ours type {tb} dims {db}")
        elif ba != bb:
            failures.append(f"{label}: {name} (type {ta}): bytes differ")
    return len(our_t)


def build_case(work, label, family, tokenizer, overrides, mxfp4):
    out = os.path.join(work, label)
    tok_dir = os.path.join(shared_data_dir(), "tokenizers", tokenizer)
    n_vocab = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json")).get_vocab_size()
    overrides = dict(overrides)
    n_vocab += overrides.pop("vocab_extra", 0)
    dtype = torch.bfloat16 if family == "gpt_oss" and not mxfp4 else torch.float32
    build_tiny_model(family, out, vocab_size=n_vocab, dtype=dtype, **overrides)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, name), out)
    if mxfp4:
        quantize_gpt_oss_mxfp4(out)
    return out


def check_mxfp4_values(model_dir, gguf_file, failures):
    """The repacked MXFP4 experts dequantise to the weights transformers computes from the checkpoint."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    _, tensors = read_gguf(gguf_file)
    experts = model.model.layers[1].mlp.experts
    gate_up = experts.gate_up_proj.detach().float()  # [E, H, 2F], gate = [..., 0::2]
    want = {"gate": gate_up[..., 0::2].transpose(1, 2), "up": gate_up[..., 1::2].transpose(1, 2),
            "down": experts.down_proj.detach().float().transpose(1, 2)}
    for proj, expected in want.items():
        t = tensors[f"blk.1.ffn_{proj}_exps.weight"]
        if t.tensor_type != gguf.GGMLQuantizationType.MXFP4:
            failures.append(f"gpt_oss: ffn_{proj}_exps is {t.tensor_type.name}, not MXFP4")
            continue
        got = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).copy()).float()
        if got.shape != expected.shape or not torch.equal(got, expected):
            diff = (got - expected).abs().max().item() if got.shape == expected.shape else f"shape {tuple(got.shape)}"
            failures.append(f"gpt_oss: ffn_{proj}_exps dequantises to other values than transformers' ({diff})")


def expect_error(label, args, needle, out_file, failures):
    code, text = moeforge(*args, expect_ok=False)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if code != 1 or len(lines) != 1 or needle not in text:
        failures.append(f"{label}: expected exit 1 and one line containing {needle!r}, got {code}: {text.strip()[:300]}")
    leftovers = [n for n in os.listdir(os.path.dirname(out_file)) if os.path.basename(out_file) in n]
    if leftovers:
        failures.append(f"{label}: left {leftovers} behind")


def check_refusals(work, failures):
    out = os.path.join(work, "refused", "x.gguf")
    os.makedirs(os.path.dirname(out))
    deepseek = os.path.join(work, "deepseek")
    build_tiny_model("deepseek_v3", deepseek)
    shutil.copy(os.path.join(ROOT, "data", "base", "tokenizer.json"), deepseek)
    expect_error("deepseek_v3", ["export-gguf", deepseek, "--out", out], "deepseek2", out, failures)
    dense_layer = os.path.join(work, "qwen3_moe_dense_layer")
    build_tiny_model("qwen3_moe", dense_layer)  # mlp_only_layers=[0]
    shutil.copy(os.path.join(ROOT, "data", "base", "tokenizer.json"), dense_layer)
    expect_error("dense layer", ["export-gguf", dense_layer, "--out", out], "layer 0 is dense", out, failures)
    olmoe_gqa = os.path.join(work, "olmoe_gqa")
    build_tiny_model("olmoe", olmoe_gqa)  # 4 heads, 2 kv heads
    shutil.copy(os.path.join(ROOT, "data", "base", "tokenizer.json"), olmoe_gqa)
    expect_error("olmoe gqa", ["export-gguf", olmoe_gqa, "--out", out], "num_key_value_heads == num_attention_heads", out,
                 failures)
    no_tokenizer = os.path.join(work, "no_tokenizer")
    build_tiny_model("llama", no_tokenizer)
    expect_error("no tokenizer", ["export-gguf", no_tokenizer, "--out", out], "no tokenizer.json", out, failures)
    base = os.path.join(ROOT, "data", "base")
    expect_error("bad type", ["export-gguf", base, "--out", out, "--type", "q4_k"], "--type", out, failures)
    expect_error("missing dir", ["export-gguf", base, "--out", os.path.join(work, "nowhere", "x.gguf")], "does not exist",
                 out, failures)
    with open(out, "w") as f:
        f.write("keep me")
    code, text = moeforge("export-gguf", base, "--out", out, expect_ok=False)
    if code != 1 or "--overwrite" not in text or open(out).read() != "keep me":
        failures.append(f"existing output: expected a refusal naming --overwrite and the file kept, got {code}: {text.strip()}")
    os.remove(out)


def check_embedded_base_and_upcycle(work, failures):
    """The embedded base (its own byte-level BPE) and a Mixtral upcycled from it: tokens as the tokenizer
    has them, experts as the checkpoint holds them."""
    base = os.path.join(ROOT, "data", "base")
    out = os.path.join(work, "base.gguf")
    moeforge("export-gguf", base, "--out", out, "--type", "bf16")
    kv, tensors = read_gguf(out)
    vocab = json.load(open(os.path.join(base, "tokenizer.json")))["model"]["vocab"]
    tokens = kv["tokenizer.ggml.tokens"][1]
    if kv["tokenizer.ggml.pre"][1] != "gpt-2" or len(tokens) != 4096 or any(tokens[i] != t for t, i in vocab.items()):
        failures.append(f"base: tokenizer pre {kv['tokenizer.ggml.pre'][1]}, {len(tokens)} tokens, not the vocab of tokenizer.json")
    if kv["general.architecture"][1] != "llama" or tensors["token_embd.weight"].tensor_type != gguf.GGMLQuantizationType.BF16:
        failures.append("base: expected a llama GGUF with bf16 token_embd")
    moe = os.path.join(work, "base_moe")
    moeforge("upcycle", base, "--to", "mixtral", "--experts", "4", "--top-k", "2", "--method", "noise", "--out", moe)
    moe_out = os.path.join(work, "moe.gguf")
    moeforge("export-gguf", moe, "--out", moe_out, "--type", "f32")
    kv, tensors = read_gguf(moe_out)
    model = transformers.AutoModelForCausalLM.from_pretrained(moe, dtype=torch.float32)
    experts = model.model.layers[2].mlp.experts
    got = torch.from_numpy(np.asarray(tensors["blk.2.ffn_down_exps.weight"].data).copy())
    if kv["llama.expert_count"][1] != 4 or kv["llama.expert_used_count"][1] != 2:
        failures.append(f"upcycled: expert_count {kv['llama.expert_count']}, used {kv['llama.expert_used_count']}")
    if not torch.equal(got, experts.down_proj.detach()):
        failures.append("upcycled: blk.2.ffn_down_exps is not the checkpoint's down projections")


def main():
    start = time.time()
    failures = []
    work = tempfile.mkdtemp(prefix="moeforge_gguf_")
    compared = 0
    try:
        for label, family, tokenizer, overrides, mxfp4, types in CASES:
            model_dir = build_case(work, label, family, tokenizer, overrides, mxfp4)
            for outtype in types:
                reference = os.path.join(work, f"{label}.{outtype}.ref.gguf")
                ours = os.path.join(work, f"{label}.{outtype}.gguf")
                convert(model_dir, reference, outtype)
                moeforge("export-gguf", model_dir, "--out", ours, "--type", outtype)
                compared += compare(f"{label} {outtype}", reference, ours, failures)
                os.remove(reference)
                if mxfp4 and outtype == "f32":
                    check_mxfp4_values(model_dir, ours, failures)
                os.remove(ours)
        check_refusals(work, failures)
        check_embedded_base_and_upcycle(work, failures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_export_gguf", failures, start,
                  f"{compared} tensors equal to llama.cpp's converter over {len(CASES)} models and their --type values")


if __name__ == "__main__":
    sys.exit(main())
