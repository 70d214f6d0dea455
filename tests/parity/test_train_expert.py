"""`moeforge train-expert`, MoE Lab's flow: on an MoE layer it trains the chosen experts; on a dense
layer (a dense model) it falls back to that layer's FFN with a note; --layer defaults to the last
layer and counts from the end when negative. Checked on the trained tensors read back."""
import os
import tempfile

from safetensors.torch import load_file

from train_common import fail, make_setup
from moeforge_cli import run_moeforge


def trained(run):
    return load_file(os.path.join(run, "trainable.safetensors"))


def base_tensors(model):
    out = {}
    for name in os.listdir(model):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(model, name)))
    return out


def train_expert(model, corpus, out, *args):
    return run_moeforge("train-expert", model, "--data", corpus, "--steps", 2, "--batch-size", 2, "--seq-len", 16, "--lr", 1e-2,
                        "--out", out, "--no-progress", *args, check=False)


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        dense, corpus = make_setup(os.path.join(tmp), "llama", {"num_hidden_layers": 3})
        r = train_expert(dense, corpus, os.path.join(tmp, "dense_run"))
        if r.returncode != 0:
            failures.append(f"dense: exit {r.returncode}: {r.stderr[-500:]}")
        else:
            if "layer 2 of" not in r.stderr or "is dense: training its FFN (layers.2.mlp.*)" not in r.stderr:
                failures.append(f"dense: no fallback note: {r.stderr[-500:]}")
            t, base = trained(os.path.join(tmp, "dense_run")), base_tensors(dense)
            names = sorted(t)
            if not names or any(not n.startswith("model.layers.2.mlp.") for n in names):
                failures.append(f"dense: trained {names}, want the last layer's MLP only")
            moved = [n for n in names if n in base and not (t[n] - base[n]).abs().max() > 0]
            if moved:
                failures.append(f"dense: unchanged after training: {moved}")
        r = train_expert(dense, corpus, os.path.join(tmp, "dense_neg"), "--layer", "-3", "--experts", 0)
        if r.returncode != 0 or "is dense: training its FFN (layers.0.mlp.*)" not in r.stderr or "do not apply" not in r.stderr:
            failures.append(f"dense --layer -3: exit {r.returncode}: {r.stderr[-400:]}")
        elif any(not n.startswith("model.layers.0.mlp.") for n in trained(os.path.join(tmp, "dense_neg"))):
            failures.append(f"dense --layer -3 trained {sorted(trained(os.path.join(tmp, 'dense_neg')))}")
        r = train_expert(dense, corpus, os.path.join(tmp, "bad_layer"), "--layer", 3)
        if r.returncode != 1 or "--layer 3:" not in r.stderr or "has 3 layers (0..2, or -1 for the last)" not in r.stderr:
            failures.append(f"--layer 3 on 3 layers: exit {r.returncode}: {r.stderr[-300:]}")
        if os.path.exists(os.path.join(tmp, "bad_layer")):
            failures.append("--layer 3 left a run directory")

        moe_dir = os.path.join(tmp, "moe")
        os.makedirs(moe_dir)
        moe, corpus2 = make_setup(moe_dir, "mixtral", {"num_hidden_layers": 2})
        r = train_expert(moe, corpus2, os.path.join(tmp, "moe_run"), "--layer", -1, "--experts", 1, "--force-route")
        if r.returncode != 0:
            failures.append(f"moe: exit {r.returncode}: {r.stderr[-500:]}")
        else:
            names = sorted(trained(os.path.join(tmp, "moe_run")))
            if not names or any(not n.startswith("model.layers.1.") or "experts" not in n for n in names):
                failures.append(f"moe --layer -1 --experts 1: trained {names}")
        r = train_expert(moe, corpus2, os.path.join(tmp, "moe_noexp"))
        if r.returncode != 1 or "--experts needs at least one expert index (layer 1 is an MoE layer)" not in r.stderr:
            failures.append(f"moe without --experts: exit {r.returncode}: {r.stderr[-300:]}")
        print(f"train-expert: dense fallback, negative layers and MoE experts checked ({len(failures)} failures)")
    fail(failures)


if __name__ == "__main__":
    main()
