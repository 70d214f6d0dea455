"""`make demo`: the main job on the embedded default (data/base, a small dense Llama-style model
pretrained by tools/make_base.sh, and the corpus in data/corpus), through `moeforge pipeline`:

1. the Sparse Upcycling comparison: continue training the dense base, and upcycle it into an
   8-expert top-2 MoE trained for the same steps on the same data; print validation loss per domain
   of both, the MoE's balance score, and which experts each domain uses;
2. expert extension: collect router stats of that MoE, grow it by the clones its plan chooses, add
   a shared expert, run the three-phase recipe, and print the final eval against its baseline.

Every number printed is measured in this run. Everything lands in out/demo (report.html per run).

    .venv/bin/python tools/demo.py --moeforge build/moeforge [--work out/demo] [--steps N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_pipeline(mf, job, out, label):
    print(f"\n=== {label}\n$ moeforge pipeline {job} --out {out}", flush=True)
    start = time.time()
    result = subprocess.run([mf, "pipeline", job, "--out", out, "--no-progress"])
    if result.returncode != 0:
        sys.exit(f"demo: '{label}' failed (exit {result.returncode}); re-run `make demo` to resume it")
    print(f"({time.time() - start:.0f}s)", flush=True)
    with open(os.path.join(out, "eval.json")) as f:
        return {m["label"]: m for m in json.load(f)["models"]}


def write_job(path, job):
    with open(path, "w") as f:
        json.dump(job, f, indent=1)
    return path


def with_steps(recipe_path, steps, out_path):
    """The recipe with its phases' steps scaled so the first phase runs `steps` (demo size knob)."""
    with open(recipe_path) as f:
        recipe = json.load(f)
    if steps:
        scale = steps / recipe["phases"][0]["steps"]
        for phase in recipe["phases"]:
            phase["steps"] = max(1, round(phase["steps"] * scale))
    with open(out_path, "w") as f:
        json.dump(recipe, f, indent=1)
    return out_path


def top_experts(usage, k=2):
    """'L0:3,5 L1:0,7 ..': each layer's k most used experts (by top-k picks)."""
    parts = []
    for layer in usage:
        counts = layer["counts"]
        best = sorted(range(len(counts)), key=lambda e: -counts[e])[:k]
        parts.append(f"L{layer['layer']}:" + ",".join(map(str, best)))
    return " ".join(parts)


def print_comparison(dense, moe):
    d, m = dense["trained"], moe["trained"]
    print("\nSparse Upcycling comparison: validation loss (nats/token) after the same training steps")
    print(f"{'domain':10s} {'base':>8s} {'dense-cont.':>12s} {'upcycled MoE':>13s} {'diff':>8s}  experts used most (MoE)")
    for domain in sorted(m.get("domains", {})):
        base_loss = dense["base"]["domains"][domain]["loss"]
        dl, ml = d["domains"][domain]["loss"], m["domains"][domain]["loss"]
        print(f"{domain:10s} {base_loss:8.4f} {dl:12.4f} {ml:13.4f} {ml - dl:+8.4f}  "
              f"{top_experts(m['domains'][domain].get('expert_usage', []))}")
    print(f"{'all':10s} {dense['base']['loss']:8.4f} {d['loss']:12.4f} {m['loss']:13.4f} {m['loss'] - d['loss']:+8.4f}")
    print(f"MoE balance score {m['balance_score']:.3f} (1 = uniform expert use); "
          f"balanced perplexity {m['balanced_perplexity']:.3f}")


def print_final(grown):
    print("\nExpert extension (stats -> grow by plan -> shared expert -> three-phase recipe), vs its baseline:")
    print(f"{'model':14s} {'loss':>8s} {'ppl':>9s} {'balance':>8s} {'KL vs base':>11s}")
    for label in ("base", "after surgery", "trained"):
        if label in grown:
            r = grown[label]
            kl = r.get("baseline", {}).get("mean_kl")
            print(f"{label:14s} {r['loss']:8.4f} {r['perplexity']:9.3f} {r['balance_score']:8.3f} "
                  f"{'' if kl is None else f'{kl:11.4f}'}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--work", default="out/demo")
    parser.add_argument("--steps", type=int, default=0, help="training steps per run (0 = the recipes' own)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming out/demo")
    args = parser.parse_args()
    mf = os.path.abspath(args.moeforge)
    work = os.path.abspath(args.work)
    base = os.path.join(ROOT, "data", "base")
    corpus = os.path.join(ROOT, "data", "corpus")
    if not os.path.exists(os.path.join(base, "config.json")):
        sys.exit(f"demo: {base} is missing; rebuild it with tools/make_base.sh")
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    continue_recipe = with_steps(os.path.join(ROOT, "recipes", "demo-continue.json"), args.steps,
                                 os.path.join(work, "continue.json"))
    extension_recipe = with_steps(os.path.join(ROOT, "recipes", "demo-expert-extension.json"),
                                  args.steps // 3 if args.steps else 0, os.path.join(work, "extension.json"))
    eval_cfg = {"block_size": 128, "max_blocks": 96, "validation_fraction": 0.05}

    dense = run_pipeline(mf, write_job(os.path.join(work, "dense.json"), {
        "base": base, "data": corpus, "recipe": continue_recipe, "eval": eval_cfg,
        "model_name": "demo-dense-continued"}), os.path.join(work, "dense"), "continue training the dense base")
    moe = run_pipeline(mf, write_job(os.path.join(work, "moe.json"), {
        "base": base, "data": corpus, "surgery": {"upcycle": {"experts": 8, "top_k": 2, "to": "mixtral"}},
        "recipe": continue_recipe, "eval": eval_cfg, "model_name": "demo-upcycled-moe"}),
        os.path.join(work, "moe"), "upcycle into an 8-expert top-2 MoE and train it for the same steps")
    print_comparison(dense, moe)

    grown = run_pipeline(mf, write_job(os.path.join(work, "grow.json"), {
        "base": os.path.join(work, "moe", "export"), "data": corpus,
        "stats": {"tokens": 16000, "block_size": 128}, "analyze": {"num_new": 2},
        "surgery": {"grow": {"clone": "plan"}, "shared_expert": {"init": "mean", "scale": 0.2}},
        "recipe": extension_recipe, "eval": eval_cfg, "model_name": "demo-grown-moe"}),
        os.path.join(work, "grow"), "stats -> grow by the plan's clones -> shared expert -> three-phase recipe")
    print_comparison(dense, moe)
    print_final(grown)
    print(f"\ndemo finished in {time.time() - start:.0f}s; runs, exports and report.html files are in {work}")


if __name__ == "__main__":
    main()
