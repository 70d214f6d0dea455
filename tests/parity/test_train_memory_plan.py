"""The memory plan of `train` and of `info` (issue 13, item 4): a training run predicts its peak before
loading (weights + fp32 masters + gradients and optimiser moments + per-step weights + activations) and
refuses a budget it cannot meet; `info` shows the plan per mode.
- On a Mixtral-shaped model (hidden 768, 3 layers, 8 experts of width 1536; 0.36 GB fp32) two runs:
  fp32 AdamW on every expert, and bf16 precision with LoRA on the experts and the router trained fully.
  Each run's measured peak RSS (kernel accounting of the child) lies within [0.75, 1.15] of the figure
  `--verbose` predicted, and --list-params prints the same prediction without loading the model.
- `--max-memory` between the weights-only figure and the full prediction is refused before loading, in
  one line naming the training state and the budget, exit 1; the corrected re-run then succeeds.
- Ranks on one machine share its budget (mapped weights once): a budget one process fits is refused
  for `--nproc 2`, each rank naming its share. A rank's plan adds the gradient buckets and, with
  `--zero 1`, holds its share of the moments: the largest rank's peak within the same bounds.
- `info --json` memory.modes: weights of the fp32 / bf16 modes are exactly parameters x 4 / x 2, a
  tiny MXFP4 GPT-OSS model's packed modes hold its expert matrices at 17 bytes per 32 values and its
  `--dequantize` mode at 2 bytes per value; streamed figures never exceed the unstreamed ones.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model, quantize_gpt_oss_mxfp4  # noqa: E402
from moeforge_cli import finish, peak_rss, run_moeforge  # noqa: E402
from train_common import make_setup, write_recipe  # noqa: E402

CONFIG = {"hidden_size": 768, "intermediate_size": 1536, "num_attention_heads": 12, "num_key_value_heads": 4,
          "num_hidden_layers": 3, "num_local_experts": 8, "num_experts_per_tok": 2}
PHASE = {"steps": 2, "batch_size": 2, "seq_len": 64, "optimizer": {"lr": 1e-4}}
RECIPES = {
    "fp32 full experts": {"precision": "fp32", "probe": "off", "phases": [{**PHASE, "select": ["experts"]}]},
    "bf16 LoRA experts + router": {"precision": "bf16", "probe": "off",
                                   "phases": [{**PHASE, "select": ["experts", "router"], "method": "lora",
                                               "lora": {"rank": 8}}]},
}
PREDICTED = re.compile(r"predicted host peak ([0-9.]+) GB")


def predicted(text, what, failures):
    found = PREDICTED.findall(text)
    if len(found) != 1:
        failures.append(f"{what}: expected one 'predicted host peak' figure, got {found}: {text.strip()[-300:]}")
        return None
    return float(found[0]) * 1e9


def check_train_plans(work, failures):
    model, corpus = make_setup(work, "mixtral", CONFIG)
    for label, recipe in RECIPES.items():
        path = write_recipe(os.path.join(work, label.replace(" ", "_") + ".json"), recipe)
        out = os.path.join(work, "run_" + label.replace(" ", "_"))
        listed = run_moeforge("train", model, "--recipe", path, "--list-params")
        rss, stderr = peak_rss("train", model, "--data", corpus, "--recipe", path, "--out", out, "--verbose",
                               "--no-progress", "--no-tensorboard")
        plan = predicted(stderr, f"{label}: train --verbose", failures)
        listed_plan = predicted(listed.stdout, f"{label}: --list-params", failures)
        if plan is None or listed_plan is None:
            continue
        if "training state" not in stderr:
            failures.append(f"{label}: the plan names no training state: {stderr.strip()[-300:]}")
        if abs(listed_plan - plan) > 0.011e9:
            failures.append(f"{label}: --list-params predicts {listed_plan / 1e9:.2f} GB, the run {plan / 1e9:.2f} GB")
        ratio = rss / plan
        print(f"  {label}: predicted {plan / 1e9:.2f} GB, measured peak RSS {rss / 1e9:.2f} GB ({ratio:.2f})")
        if not 0.75 <= ratio <= 1.15:
            failures.append(f"{label}: measured {rss / 1e9:.2f} GB is {ratio:.2f} x the predicted {plan / 1e9:.2f} GB")

    # A budget the weights meet but the training state does not: refused before loading, one line.
    path = os.path.join(work, "fp32_full_experts.json")
    listed = run_moeforge("train", model, "--recipe", path, "--list-params").stdout
    weights = float(re.search(r"weights ([0-9.]+) GB", listed).group(1))
    budget = f"{weights + 0.6:.2f}"
    out = os.path.join(work, "refused")
    t0 = time.time()
    r = run_moeforge("train", model, "--data", corpus, "--recipe", path, "--out", out, "--max-memory", budget,
                     "--no-progress", check=False)
    lines = r.stderr.strip().splitlines()
    seconds = time.time() - t0
    if (r.returncode != 1 or len(lines) != 1 or f"memory budget is {budget} GB" not in lines[0]
            or "training state" not in lines[0]):
        failures.append(f"--max-memory {budget}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    print(f"  --max-memory {budget} refused in {seconds:.1f}s: {lines[-1][:160] if lines else ''}...")
    r = run_moeforge("train", model, "--data", corpus, "--recipe", path, "--out", out, "--no-progress", "--no-tensorboard",
                     check=False)
    if r.returncode != 0 or not os.path.exists(os.path.join(out, "trainable.safetensors")):
        failures.append(f"the re-run after the refusal failed: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    check_shared_budget(model, corpus, path, listed, work, failures)
    check_data_parallel_plans(model, corpus, path, listed, work, failures)
    return model


def check_data_parallel_plans(model, corpus, recipe, listed, work, failures):
    """One rank's plan of a 2-rank run: the gradient buckets added, ZeRO-1's moments shared; the
    largest rank's measured peak within the same bounds, --list-params --nproc 2 the run's figure."""
    one = predicted(listed, "one process --list-params", failures)
    figures = {}
    for zero in ("0", "1"):
        args = ["--nproc", "2", "--zero", zero]
        plan_text = run_moeforge("train", model, "--recipe", recipe, "--list-params", *args).stdout
        listed_plan = predicted(plan_text, f"--zero {zero} --list-params", failures)
        rss, stderr = peak_rss("train", model, "--data", corpus, "--recipe", recipe, "--out", os.path.join(work, "dp" + zero),
                               "--verbose", "--no-progress", "--no-tensorboard", *args)
        plan = predicted(stderr, f"--nproc 2 --zero {zero} --verbose", failures)
        if None in (one, listed_plan, plan):
            return
        if abs(listed_plan - plan) > 0.011e9 or "gradient buckets" not in plan_text:
            failures.append(f"--zero {zero}: --list-params --nproc 2 predicts {listed_plan / 1e9:.2f} GB, the run {plan / 1e9:.2f} GB: "
                            f"{plan_text.strip()[-300:]}")
        ratio = rss / plan
        print(f"  --nproc 2 --zero {zero}: predicted {plan / 1e9:.2f} GB per rank, largest rank's peak RSS {rss / 1e9:.2f} GB ({ratio:.2f})")
        if not 0.75 <= ratio <= 1.15:
            failures.append(f"--nproc 2 --zero {zero}: measured {rss / 1e9:.2f} GB is {ratio:.2f} x the predicted {plan / 1e9:.2f} GB")
        figures[zero] = plan
    # 85 M fp32 parameters in 6 tensors of 75.5 and 37.7 MB of gradient: at most 4 buckets in flight,
    # each of 25 MB or one larger gradient: +0.30 GB over one process (not the 0.34 GB of every
    # gradient); ZeRO-1 keeps at most half the 0.68 GB of moments plus the largest tensor's 0.15 GB.
    if len(figures) == 2 and not (abs(figures["0"] - one - 0.302e9) < 0.015e9 and 0.15e9 < figures["0"] - figures["1"] < 0.35e9):
        failures.append(f"data-parallel plans: one process {one / 1e9:.2f} GB, --zero 0 {figures['0'] / 1e9:.2f}, "
                        f"--zero 1 {figures['1'] / 1e9:.2f}")


def check_shared_budget(model, corpus, recipe, listed, work, failures):
    """Processes of one run on one machine share its budget (the mapped weights once): a budget one
    process fits is refused for --nproc 2 when two private states exceed it, before loading."""
    peak = float(PREDICTED.search(listed).group(1))
    mapped = float(re.search(r"\(([0-9.]+) GB mapped from the file\)", listed).group(1))
    budget = peak + 0.05
    share = mapped + (budget - mapped) / 2
    if not share < peak:
        failures.append(f"shared budget: the model's plan ({peak} GB, {mapped} GB mapped) cannot show the split")
        return
    budget_text = f"{budget:.2f}"
    r = run_moeforge("train", model, "--data", corpus, "--recipe", recipe, "--out", os.path.join(work, "two_ranks"),
                     "--max-memory", budget_text, "--nproc", "2", "--no-progress", "--no-tensorboard", check=False)
    said = re.search(r"this rank's share of the memory budget is ([0-9.]+) GB \(([0-9.]+) GB for the 2 processes of this run",
                     r.stderr)
    if (r.returncode != 1 or not said or abs(float(said.group(1)) - share) > 0.015 or said.group(2) != budget_text
            or os.path.exists(os.path.join(work, "two_ranks", "trainable.safetensors"))):
        failures.append(f"--nproc 2 --max-memory {budget_text}: exit {r.returncode}, wanted a share of {share:.2f} GB: "
                        f"{r.stderr.strip()[-500:]}")
    else:
        print(f"  --nproc 2 --max-memory {budget_text}: refused (each rank's share {share:.2f} GB < {peak} GB)")
    r = run_moeforge("train", model, "--data", corpus, "--recipe", recipe, "--out", os.path.join(work, "one_rank"),
                     "--max-memory", budget_text, "--no-progress", "--no-tensorboard", check=False)
    if r.returncode != 0:
        failures.append(f"one process with --max-memory {budget_text} failed: exit {r.returncode}: {r.stderr.strip()[-300:]}")


def modes_of(model):
    info = json.loads(run_moeforge("info", model, "--json").stdout)
    return info, {m["mode"]: m for m in info["memory"]["modes"]}


def check_info_modes(work, mixtral, failures):
    info, modes = modes_of(mixtral)
    params = info["total_params"]
    if set(modes) != {"fp32", "bf16"}:
        failures.append(f"mixtral info modes {sorted(modes)}, expected fp32 and bf16")
    else:
        if modes["fp32"]["weight_bytes"] != 4 * params or modes["bf16"]["weight_bytes"] != 2 * params:
            failures.append(f"mixtral weights {modes['fp32']['weight_bytes']} / {modes['bf16']['weight_bytes']}, "
                            f"expected {4 * params} / {2 * params}")
        if not 0 < modes["fp32"]["mapped_bytes"] < modes["fp32"]["weight_bytes"] or modes["bf16"]["mapped_bytes"] != 0:
            failures.append("mixtral (stored fp32): fp32 maps some tensors (not the stacked experts), bf16 none: "
                            f"{modes['fp32']['mapped_bytes']} / {modes['bf16']['mapped_bytes']}")
    table = run_moeforge("info", mixtral).stdout
    if "memory plan on CPU" not in table or "streamed" not in table:
        failures.append(f"info's table has no memory plan: {table[-400:]}")

    gpt_oss = os.path.join(work, "gpt_oss")
    model = build_tiny_model("gpt_oss", gpt_oss)
    quantize_gpt_oss_mxfp4(gpt_oss)
    info, modes = modes_of(gpt_oss)
    c = model.config
    expert_weights = c.num_hidden_layers * c.num_local_experts * 3 * c.intermediate_size * c.hidden_size
    rest = info["total_params"] - expert_weights
    want = {"fp32, MXFP4 packed": rest * 4 + expert_weights // 32 * 17, "bf16, MXFP4 packed": rest * 2 + expert_weights // 32 * 17,
            "bf16 --dequantize": info["total_params"] * 2}
    got = {mode: m["weight_bytes"] for mode, m in modes.items()}
    if got != want:
        failures.append(f"gpt_oss MXFP4 info weights {got}, expected {want}")
    for info_model, ms in (("mixtral", modes_of(mixtral)[1]), ("gpt_oss", modes)):
        for mode, m in ms.items():
            if not m["streamed_peak_bytes"] <= m["host_peak_bytes"] or m["host_peak_bytes"] < m["weight_bytes"]:
                failures.append(f"{info_model} {mode}: streamed {m['streamed_peak_bytes']}, peak {m['host_peak_bytes']}, "
                                f"weights {m['weight_bytes']}")


def main():
    start = time.time()
    failures = []
    work = tempfile.mkdtemp(prefix="moeforge_train_memory_")
    try:
        mixtral = check_train_plans(work, failures)
        check_info_modes(work, mixtral, failures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_train_memory_plan", failures, start, "train predicts and enforces its peak; info plans per mode")


if __name__ == "__main__":
    sys.exit(main())
