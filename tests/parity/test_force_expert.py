"""Parity: `forward/generate --force-expert` read as grow's --clone reads LAYER:EXPERT ('*:E' every MoE
layer, negative layers from the end). Reference: transformers running the same Mixtral with every expert
replaced by expert E, which is what routing every token to E with weight 1 computes (Mixtral's top-k
weights are renormalised to sum to 1). Bad values: one-line error, exit 1, before loading.
Tolerance 1e-4 on logits. Exit 0 = pass. Env: MOEFORGE_BIN."""
import os
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from moeforge_cli import run_moeforge  # noqa: E402
from small_tokenizer import save_small_tokenizer  # noqa: E402

TOLERANCE = 1e-4
EXPERT = 5
failures = []
torch.set_num_threads(2)


def forward(model_dir, ids, force):
    out = os.path.join(model_dir, "forward.safetensors")
    result = run_moeforge("forward", model_dir, "--ids", ",".join(map(str, ids)), "--out", out, "--force-expert",
                          force, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"forward --force-expert {force}: {result.stderr.strip()}")
    return load_file(out)["logits"]


def every_expert_is(model, layers, expert):
    """transformers' model with each expert of `layers` replaced by `expert` (fused [E, ...] or per-expert)."""
    with torch.no_grad():
        for index in layers:
            experts = model.model.layers[index].mlp.experts
            if isinstance(experts, torch.nn.ModuleList):
                for e in experts:
                    e.load_state_dict(experts[expert].state_dict())
            else:
                for p in experts.parameters():
                    p.copy_(p[expert].unsqueeze(0).expand_as(p))
    return model


def reference(model_dir, family, layers, ids):
    model = every_expert_is(build_tiny_model(family, os.path.join(model_dir, "ref")), layers, EXPERT)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def expect_error(model_dir, force, part):
    result = run_moeforge("generate", model_dir, "--prompt", "hi", "--max-new", "2", "--force-expert", force,
                          check=False)
    lines = result.stderr.strip().splitlines()
    if result.returncode != 1 or not lines or part not in lines[-1]:
        failures.append(f"--force-expert {force}: exit {result.returncode}, wanted 1 with '{part}': {result.stderr.strip()}")


def main():
    start = time.time()
    ids = torch.randint(0, 300, (24,), generator=torch.Generator().manual_seed(3)).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "mixtral")
        model = build_tiny_model("mixtral", model_dir)
        n = model.config.num_hidden_layers
        save_small_tokenizer(model_dir)
        plain = forward(model_dir, ids, "0:0")
        cases = [(f"*:{EXPERT}", list(range(n))), (f"-1:{EXPERT}", [n - 1]), (f"0:{EXPERT}", [0])]
        for force, layers in cases:
            got = forward(model_dir, ids, force)
            want = reference(model_dir, "mixtral", layers, ids)
            diff = (got - want).abs().max().item()
            print(f"  --force-expert {force:<6} vs transformers with layers {layers} all expert {EXPERT}: {diff:.2e}")
            if diff > TOLERANCE:
                failures.append(f"--force-expert {force}: logits max diff {diff:.3g}")
        if (forward(model_dir, ids, f"*:{EXPERT}") - plain).abs().max().item() < 1e-3:
            failures.append("forcing a different expert did not change the logits")
        result = run_moeforge("generate", model_dir, "--prompt", "hello", "--max-new", "3", "--ignore-eos",
                              "--force-expert", f"*:{EXPERT}", check=False)
        if result.returncode != 0:
            failures.append(f"generate --force-expert '*:{EXPERT}': exit {result.returncode}: {result.stderr.strip()}")
        expect_error(model_dir, "*:8", "the model has 8 experts")
        expect_error(model_dir, f"{n}:1", f"layer {n} is not an MoE layer")
        expect_error(model_dir, f"-{n + 1}:1", "is not an MoE layer")
        expect_error(model_dir, "x:1", "is not LAYER:EXPERT")
        expect_error(model_dir, "1", "is not LAYER:EXPERT")
    for failure in failures:
        print("FAIL:", failure)
    print(f"force_expert: {'FAIL' if failures else 'ok'} ({time.time() - start:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
