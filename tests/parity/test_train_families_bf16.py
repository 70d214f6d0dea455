"""`precision: bf16` training on a tiny model of every family (MoE and dense): the same two-phase
recipe (every tensor in full, then LoRA on attention) in fp32 and in bf16. Both must finish; the
bf16 run's step losses must stay within 2 % of the fp32 run's; its trainable.safetensors must hold
fp32 masters whose weight matrices are close to the fp32 run's (relative L2 distance < 5 %).
Biases are left out of that comparison: they start at zero, and some get (near) zero gradient by
symmetry (a k_proj bias shifts every score of a query equally), so Adam turns rounding noise into
full-size steps whose sign differs between fp32 and bf16."""
import json
import os
import sys
import tempfile

from safetensors.numpy import load_file

from train_common import make_setup, moeforge, write_recipe

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt_neo", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss",
            "deepseek_v3"]


def train(tmp, model, corpus, name, precision):
    recipe = {"seed": 1, "threads": 2, "precision": precision,
              "defaults": {"batch_size": 2, "seq_len": 16, "optimizer": {"lr": 1e-3}},
              "phases": [{"steps": 2, "select": "all"},
                         {"steps": 2, "select": "attention", "method": "lora", "lora": {"rank": 2}}]}
    run = os.path.join(tmp, name)
    moeforge("train", model, "--data", corpus, "--recipe", write_recipe(run + ".json", recipe), "--out", run, "--no-progress")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    return losses, load_file(os.path.join(run, "trainable.safetensors"))


def main():
    failures = []
    with tempfile.TemporaryDirectory() as root:
        for family in FAMILIES:
            tmp = os.path.join(root, family)
            os.makedirs(tmp)
            model, corpus = make_setup(tmp, family=family)
            fp32_losses, fp32 = train(tmp, model, corpus, "fp32", "fp32")
            bf16_losses, bf16 = train(tmp, model, corpus, "bf16", "bf16")
            worst_loss = max(abs(a - b) / a for a, b in zip(fp32_losses, bf16_losses))
            dtypes = {str(t.dtype) for t in bf16.values()}
            worst_tensor, worst_name = 0.0, ""
            for name, t in fp32.items():
                if t.ndim < 2 or "bias" in name:
                    continue
                d = float(((bf16[name].astype("float64") - t) ** 2).sum() ** 0.5 / max(1e-12, (t.astype("float64") ** 2).sum() ** 0.5))
                if d > worst_tensor:
                    worst_tensor, worst_name = d, name
            print(f"{family:10s} losses max rel diff {worst_loss:.4f}  tensors max rel L2 {worst_tensor:.4f} ({worst_name})  "
                  f"bf16 export dtypes {sorted(dtypes)}")
            if len(fp32_losses) != 4 or len(bf16_losses) != 4:
                failures.append(f"{family}: expected 4 logged steps, got {len(fp32_losses)} / {len(bf16_losses)}")
            if worst_loss > 0.02:
                failures.append(f"{family}: bf16 loss differs from fp32 by {worst_loss:.3%}")
            if dtypes != {"float32"}:
                failures.append(f"{family}: bf16 run exported {dtypes}, not the fp32 masters")
            if fp32.keys() != bf16.keys():
                failures.append(f"{family}: the runs exported different tensors")
            if worst_tensor > 0.05:
                failures.append(f"{family}: {worst_name} differs from the fp32 run by {worst_tensor:.2%} (relative L2)")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
