"""ZeRO-3 (`train --zero 3`, issue 16): every frozen layer tensor split over the ranks, each layer's
shards all-gathered just before it runs and the layer recomputed in the backward. On a tiny Mixtral,
two full-weight phases (router + experts with router noise, then attention, which phase 1 had split):
- one process with --zero 3 (nothing to split, every layer recomputed) equals a plain run bitwise:
  losses, gradient norms and trainable.safetensors; the router noise the recompute draws is the
  forward's (the generator's state is replayed);
- 2 ranks with --zero 3 and 2 ranks with --zero 2 equal one process on the same global batch bitwise
  (each micro-batch draws its own noise on whichever rank runs it); rank 0 says what it split (its
  share is half);
- a --zero 3 run of 2 ranks stopped after 2 steps resumes on 1 process to the same result;
- --zero 3 with --expert-parallel is refused before loading, in one line.
What it saves is measured by bench/zero3_memory_bench.py.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import finish, run_moeforge  # noqa: E402
from train_common import make_setup, read, write_recipe  # noqa: E402


def recipe(accum):
    phase = {"batch_size": 2, "seq_len": 16, "grad_accum": accum, "optimizer": {"lr": 1e-2}}
    first = dict(phase, name="experts", steps=3, select=["router", "experts"], routing={"router_noise_std": 0.1})
    return {"seed": 3, "threads": 1, "log_every": 1, "checkpoint_every": 1,
            "phases": [first, dict(phase, name="attention", steps=2, select="attention")]}


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [(r["step"], r["loss"], r["grad_norm"]) for r in map(json.loads, f)]


def same_run(label, got, want, failures):
    problems = []
    if metrics(got) != metrics(want):
        problems.append(f"metrics {metrics(got)} vs {metrics(want)}")
    if read(os.path.join(got, "trainable.safetensors")) != read(os.path.join(want, "trainable.safetensors")):
        problems.append("trainable.safetensors differs")
    print(f"  {label:<56} {'identical' if not problems else '; '.join(problems)}")
    if problems:
        failures.append(f"{label}: " + "; ".join(problems))


def main():
    start = time.time()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model, corpus = make_setup(tmp)
        recipes = {accum: write_recipe(os.path.join(tmp, f"r{accum}.json"), recipe(accum)) for accum in (1, 2)}

        def train(out, accum, *extra):
            r = run_moeforge("train", model, "--data", corpus, "--recipe", recipes[accum], "--out",
                             os.path.join(tmp, out), "--no-progress", *extra)
            return os.path.join(tmp, out), r.stderr

        plain, _ = train("plain", 2)
        one, note = train("zero3_one_process", 2, "--zero", "3")
        if "--zero 3 in one process" not in note:
            failures.append(f"--zero 3 in one process: no note saying nothing is split: {note.strip()[-300:]}")
        same_run("1 process --zero 3 vs plain (router noise)", one, plain, failures)

        zero2, _ = train("zero2_two", 1, "--nproc", "2", "--zero", "2")
        zero3, note = train("zero3_two", 1, "--nproc", "2", "--zero", "3")
        same_run("--nproc 2 --zero 2 vs 1 process (same global batch)", zero2, plain, failures)
        same_run("--nproc 2 --zero 3 vs 1 process (same global batch)", zero3, plain, failures)
        split = SPLIT.search(note)
        if not split:
            failures.append(f"--nproc 2 --zero 3: rank 0 did not say what it split: {note.strip()[-300:]}")
        else:
            whole = float(split.group(1)) * UNITS[split.group(2)]
            each = float(split.group(3)) * UNITS[split.group(4)]
            print(f"  split: {split.group(0)}")
            if whole <= 0 or abs(each - whole / 2) > 0.02 * whole:
                failures.append(f"--zero 3 over 2 ranks: each should hold half of what is split: {split.group(0)}")

        stopped, _ = train("zero3_stopped", 1, "--nproc", "2", "--zero", "3", "--stop-after-steps", "2")
        run_moeforge("train", "--resume", stopped, "--recipe", recipes[2], "--no-progress")
        same_run("--zero 3 on 2 ranks for 2 steps, --resume on 1 process", stopped, plain, failures)

        out = os.path.join(tmp, "refused")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", recipes[1], "--out", out, "--nproc", "2",
                         "--zero", "3", "--expert-parallel", "--no-progress", check=False)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 1 or not any("--zero 3 with --expert-parallel is not supported" in line for line in lines):
            failures.append(f"--zero 3 --expert-parallel: expected exit 1 naming both, got {r.returncode}: {r.stderr.strip()[-300:]}")
    return finish("test_zero3", failures, start, "ZeRO-3 runs equal the unsplit runs")


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
SPLIT = re.compile(r"ZeRO-3: frozen layer weights of ([\d.]+) (\w+) split over 2 ranks \(([\d.]+) (\w+) on each\)")


if __name__ == "__main__":
    sys.exit(main())
