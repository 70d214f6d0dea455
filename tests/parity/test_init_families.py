"""`moeforge init` parity: every family's random checkpoint loads in transformers'
AutoModelForCausalLM with no missing, unexpected or mismatched keys, runs a forward pass with
finite logits, has the documented init (norms 1, biases 0, matrices ~N(0, std)), and is
byte-identical for the same seed. Env: MOEFORGE_BIN."""
import hashlib
import json
import os
import sys
import tempfile

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import run_moeforge  # noqa: E402

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt_neo", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss",
            "deepseek_v3"]


def run(*args):
    result = run_moeforge(*args, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"moeforge {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def digest(directory):
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.hexdigest()


def check_family(family, tmp):
    out = os.path.join(tmp, family)
    run("init", "--family", family, "--out", out, "--seed", "7", "--config", '{"num_hidden_layers": 2}'
        if family != "gpt_neo" else '{"num_layers": 2}')
    model, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        return f"{family}: loading info {problems}"
    if type(model).__name__ != json.load(open(os.path.join(out, "config.json")))["architectures"][0]:
        return f"{family}: loaded as {type(model).__name__}"
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight") or name.endswith("ln_f.weight") \
                or ".ln_" in name and name.endswith(".weight"):
            if not torch.all(tensor == 1):
                return f"{family}: norm {name} is not all ones"
        elif name.endswith(".bias") or name.endswith("_bias") or name.endswith(".sinks"):
            if ".attn.bias" in name or ".attn.masked_bias" in name:
                continue  # GPT-Neo buffers
            if not torch.all(tensor == 0):
                return f"{family}: bias {name} is not all zeros"
    embed = model.get_input_embeddings().weight
    if abs(embed.std().item() - 0.02) > 0.002:
        return f"{family}: embedding std {embed.std().item():.4f}, expected 0.02"
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    if logits.shape != (2, 12, model.config.vocab_size) or not torch.isfinite(logits).all():
        return f"{family}: bad logits {tuple(logits.shape)}"
    again = os.path.join(tmp, family + "_again")
    run("init", "--family", family, "--out", again, "--seed", "7", "--config", '{"num_hidden_layers": 2}'
        if family != "gpt_neo" else '{"num_layers": 2}')
    if digest(out) != digest(again):
        return f"{family}: same seed gave different files"
    return None


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            problem = check_family(family, tmp)
            print(f"{family:10s} {'FAIL ' + problem if problem else 'ok'}")
            if problem:
                failures.append(problem)
        # bf16 and a tokenizer-less config override.
        out = os.path.join(tmp, "bf16")
        run("init", "--family", "llama", "--out", out, "--dtype", "bf16", "--config", '{"hidden_size": 96}')
        model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
        if model.config.hidden_size != 96 or model.model.embed_tokens.weight.dtype != torch.bfloat16:
            failures.append("bf16 override not applied")
        # Bad input fails with one line.
        bad = run_moeforge("init", "--family", "nope", "--out", os.path.join(tmp, "x"), check=False)
        if bad.returncode == 0 or "unknown family 'nope'" not in bad.stderr:
            failures.append(f"unknown family message: {bad.stderr.strip()}")
    print(f"init parity: {len(FAMILIES)} families, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
