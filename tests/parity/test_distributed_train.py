"""Data-parallel training on c10d (Gloo on localhost): a run of 2 ranks with grad_accum 1 must equal one
process with grad_accum 2 on the same global batch (losses, gradient norms, trainable.safetensors and
the PEFT adapter; the first phase has router noise, which each micro-batch draws alike on whichever
rank runs it, and the LoRA phase after it starts from the same adapters on every rank), with the gradient all-reduce in buckets during the backward (many small ones, or
one after it: `--bucket-mb`), launched both by `moeforge train --nproc 2` and by torch's own
`torchrun --no-python --standalone --nproc-per-node 2` (from the venv), and with the optimiser state
sharded (`--zero 1`), whose checkpoints (one file of optimiser state per rank, listed in state.json)
resume on 1 process, on 2 ranks, and are resumed into. With
`--expert-parallel` (each rank computes half of every layer's experts, tokens exchanged by all-to-all,
each once per owning rank: metrics.jsonl's expert_exchange counts fewer token rows than picks)
the run equals one process within 1e-5 (losses, every step's gradients, trained tensors). Resume from 2 ranks on 1 and
from 1 on 2 continues exactly; killing one rank (kill -9) ends the run within a bounded time with one
line naming that rank, leaves the last checkpoint intact, and --resume finishes it exactly.
`teacher-cache --nproc 2` writes the one-process cache, file for file; `eval --nproc 2` reports what
one process reports (within 1e-9 relative: the sums are added in another order), and so does
`stats --nproc 2`.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import BIN, finish, run_moeforge  # noqa: E402
from train_common import make_setup, read, write_recipe  # noqa: E402

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")


def recipe(accum, steps=3, checkpoint_every=0, eps=None):
    phase = {"batch_size": 2, "seq_len": 16, "grad_accum": accum, "optimizer": {"lr": 1e-2}}
    if eps:
        phase["optimizer"]["eps"] = eps
    r = {"seed": 3, "threads": 1, "log_every": 1,
         "phases": [dict(phase, name="experts", steps=steps, select=["router", "experts"], routing={"router_noise_std": 0.1}),
                    dict(phase, name="lora", steps=2, select="attention", method="lora", lora={"rank": 2})]}
    if checkpoint_every:
        r["checkpoint_every"] = checkpoint_every
    return r


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [(r["step"], r["loss"], r["grad_norm"]) for r in map(json.loads, f)]


def same_run(label, got, want, failures):
    """Bitwise where the arithmetic is the same: a 2-rank all-reduce adds the two micro-batch gradients
    in the order one process accumulates them."""
    problems = []
    if metrics(got) != metrics(want):
        problems.append(f"metrics {metrics(got)} vs {metrics(want)}")
    for name in ("trainable.safetensors", "adapter_model.safetensors"):
        if read(os.path.join(got, name)) != read(os.path.join(want, name)):
            problems.append(f"{name} differs")
    print(f"  {label:<52} {'identical' if not problems else '; '.join(problems)}")
    if problems:
        failures.append(f"{label}: " + "; ".join(problems))


def close_run(label, got, want, failures, tolerance=1e-6):
    """Within `tolerance` relative (ZeRO-2 sums the clipping norm from per-rank shares, in another order)."""
    from safetensors.torch import load_file
    problems = []
    a, b = metrics(got), metrics(want)
    if [s for s, _, _ in a] != [s for s, _, _ in b]:
        problems.append(f"steps {a} vs {b}")
    else:
        worst = max((abs(x - y) / max(abs(y), 1e-12) for (_, l1, g1), (_, l2, g2) in zip(a, b) for x, y in ((l1, l2), (g1, g2))),
                    default=0.0)
        if worst > tolerance:
            problems.append(f"losses/grad norms differ by {worst:.3g} relative: {a} vs {b}")
    x, y = load_file(os.path.join(got, "trainable.safetensors")), load_file(os.path.join(want, "trainable.safetensors"))
    if x.keys() != y.keys():
        problems.append("trainable.safetensors holds other tensors")
    else:
        worst = max(((x[k].double() - y[k].double()).abs().max() / y[k].double().abs().max().clamp_min(1e-12)).item() for k in x)
        if worst > tolerance:
            problems.append(f"trained tensors differ by {worst:.3g} relative")
    print(f"  {label:<52} {'within ' + str(tolerance) if not problems else '; '.join(problems)}")
    if problems:
        failures.append(f"{label}: " + "; ".join(problems))


def check_checkpoint_shards(run, failures):
    """A --zero 1 checkpoint: rank 0's tensors.safetensors holds its share of the optimiser state, rank 1's
    share is the file state.json lists, and together they hold each trained tensor's moments once."""
    from safetensors import safe_open
    step = os.path.join(run, "checkpoints", read(os.path.join(run, "checkpoints", "latest")).decode().strip())
    with open(os.path.join(step, "state.json")) as f:
        shards = json.load(f).get("shards", [])
    keys = []
    for name in ["tensors.safetensors"] + shards:
        with safe_open(os.path.join(step, name), "pt") as f:
            keys.append({k for k in f.keys() if k.startswith("opt.")})
    stray = [n for n in os.listdir(os.path.join(run, "checkpoints")) if n.startswith(".")]
    ok = shards == ["optimizer.rank-1-of-2.safetensors"] and all(keys) and not keys[0] & keys[1] and not stray
    print(f"  {'--zero 1 checkpoint: one file per rank':<52} {shards}, optimiser slots {[len(k) for k in keys]}"
          f"{', stray ' + str(stray) if stray else ''}")
    if not ok:
        failures.append(f"--zero 1 checkpoint: expected rank 1's share in its own file, got {shards}, slots "
                        f"{[len(k) for k in keys]}, stray {stray}")


def close_gradients(label, got, want, steps, failures, tolerance=1e-5):
    """Every dumped gradient (RUN/dump/step_<i>.safetensors) within `tolerance` of the tensor's largest."""
    from safetensors.torch import load_file
    worst, where = 0.0, ""
    for i in range(steps):
        x, y = (load_file(os.path.join(run, "dump", f"step_{i}.safetensors")) for run in (got, want))
        for k in y:
            if x[k].dtype.is_floating_point and x[k].dim() > 1:
                d = ((x[k].double() - y[k].double()).abs().max() / y[k].double().abs().max().clamp_min(1e-12)).item()
                if d > worst:
                    worst, where = d, f"step {i} {k}"
    print(f"  {label:<52} gradients within {worst:.1e} ({where})")
    if worst > tolerance:
        failures.append(f"{label}: gradients differ by {worst:.3g} relative at {where}")


def expert_parallel(tmp, model, corpus, failures):
    """--expert-parallel: each of 2 ranks runs half of every layer's experts for both ranks' tokens."""
    # Adam's eps 1e-8 would turn the rounding of a gradient that cancels to ~1e-9 into an lr-sized
    # step: eps 1e-6 keeps the trained tensors' comparison about the arithmetic.
    r2 = write_recipe(os.path.join(tmp, "ep_accum2.json"), recipe(2, eps=1e-6))
    r1 = write_recipe(os.path.join(tmp, "ep_accum1.json"), recipe(1, eps=1e-6))
    base, ep, ep_zero = (os.path.join(tmp, name) for name in ("ep_base", "ep", "ep_zero1"))
    train(model, corpus, r2, base, "--dump-steps", "5")
    r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", ep, "--no-progress", "--nproc", "2",
                     "--expert-parallel", "--dump-steps", "5")
    if "expert parallel: rank 0 computes experts 0-1 of 4" not in r.stderr:
        failures.append(f"--expert-parallel: expected rank 0's share of the experts, got: {r.stderr.strip()[-300:]}")
    close_run("--nproc 2 --expert-parallel vs 1 process", ep, base, failures, tolerance=1e-5)
    # A token travels once to each rank owning one of its 2 picks: fewer rows than picks (two picks
    # on one rank's half of the 4 experts share a row), never fewer than one per token.
    with open(os.path.join(ep, "metrics.jsonl")) as f:
        tally = [json.loads(line).get("expert_exchange") for line in f]
    if not tally or not all(t and t["picks"] // 2 <= t["token_rows"] < t["picks"] for t in tally):
        failures.append(f"--expert-parallel: expected picks/2 <= token rows < picks each step, got {tally}")
    else:
        print(f"  --expert-parallel exchange: {tally[0]['token_rows']} token rows for {tally[0]['picks']} picks (step 1)")
    close_gradients("--expert-parallel: every step's gradients", ep, base, 5, failures)
    train(model, corpus, r1, ep_zero, "--nproc", "2", "--expert-parallel", "--zero", "1")
    close_run("--nproc 2 --expert-parallel --zero 1 vs 1 process", ep_zero, base, failures, tolerance=1e-5)
    dense = os.path.join(tmp, "dense")
    run_moeforge("init", "--family", "llama", "--config", json.dumps({"hidden_size": 32, "intermediate_size": 48,
                 "num_attention_heads": 4, "num_key_value_heads": 2}), "--tokenizer", model, "--out", dense)
    r = run_moeforge("train", dense, "--data", corpus, "--recipe", r1, "--out", os.path.join(tmp, "ep_dense"), "--nproc", "2",
                     "--expert-parallel", check=False)
    if r.returncode != 1 or "--expert-parallel splits the experts of an MoE model" not in r.stderr:
        failures.append(f"--expert-parallel on a dense model: expected exit 1 naming it, got {r.returncode}: {r.stderr.strip()[-300:]}")


def json_difference(a, b):
    """Largest relative difference between two reports' numbers (inf when their structure differs)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max([json_difference(a[k], b[k]) for k in a], default=0.0)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max([json_difference(x, y) for x, y in zip(a, b)], default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) / max(abs(a), 1e-12) if a != b else 0.0
    return 0.0 if a == b else float("inf")


def train(model, corpus, recipe_path, out, *extra):
    run_moeforge("train", model, "--data", corpus, "--recipe", recipe_path, "--out", out, "--no-progress", *extra)


def kill_one_rank(tmp, model, corpus, failures):
    """kill -9 of rank 1 after the first checkpoints: the launcher names it and stops rank 0."""
    long2 = write_recipe(os.path.join(tmp, "long2.json"), recipe(2, steps=120, checkpoint_every=2))
    long1 = write_recipe(os.path.join(tmp, "long1.json"), recipe(1, steps=120, checkpoint_every=2))
    whole = os.path.join(tmp, "long_one_process")
    train(model, corpus, long2, whole)
    run = os.path.join(tmp, "killed")
    launcher = subprocess.Popen([BIN, "train", model, "--data", corpus, "--recipe", long1, "--out", run, "--nproc", "2",
                                 "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and launcher.poll() is None:
        done = os.path.join(run, "checkpoints")
        if os.path.isdir(done) and len([d for d in os.listdir(done) if not d.startswith(".")]) >= 2:
            break
        time.sleep(0.05)
    rank1 = None
    with open(f"/proc/{launcher.pid}/task/{launcher.pid}/children") as f:
        for pid in map(int, f.read().split()):
            with open(f"/proc/{pid}/environ", "rb") as e:
                env = dict(v.split(b"=", 1) for v in e.read().split(b"\0") if b"=" in v)
            if env.get(b"RANK") == b"1":
                rank1 = pid
    if rank1 is None:
        failures.append("kill: no worker with RANK=1 under the launcher")
        launcher.kill()
        return
    killed_at = time.time()
    os.kill(rank1, signal.SIGKILL)
    try:
        _, err = launcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        launcher.kill()
        failures.append("kill: the launcher did not end within 60 s of rank 1's death")
        return
    took = time.time() - killed_at
    line = [l for l in err.splitlines() if "--nproc" in l]
    print(f"  kill -9 rank 1: launcher exit {launcher.returncode} after {took:.1f} s: {line[0] if line else err.strip()[-200:]}")
    if launcher.returncode != 1 or not line or "rank 1 was killed by signal 9" not in line[0]:
        failures.append(f"kill: expected exit 1 and 'rank 1 was killed by signal 9', got {launcher.returncode}: {err.strip()[-400:]}")
    run_moeforge("train", "--resume", run, "--recipe", long2, "--no-progress")
    same_run("kill -9 rank 1, then --resume on 1 process", run, whole, failures)


def main():
    start = time.time()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model, corpus = make_setup(tmp)
        r2 = write_recipe(os.path.join(tmp, "accum2.json"), recipe(2, checkpoint_every=1))
        r1 = write_recipe(os.path.join(tmp, "accum1.json"), recipe(1, checkpoint_every=1))
        base = os.path.join(tmp, "one_process")
        train(model, corpus, r2, base)
        nproc = os.path.join(tmp, "nproc2")
        train(model, corpus, r1, nproc, "--nproc", "2")
        same_run("--nproc 2 (accum 1) vs 1 process (accum 2)", nproc, base, failures)
        for label, mb in (("many buckets during the backward", "0.002"), ("one all-reduce after it", "0")):
            out = os.path.join(tmp, "buckets_" + mb)
            train(model, corpus, r1, out, "--nproc", "2", "--bucket-mb", mb)
            same_run(f"--nproc 2 --bucket-mb {mb} ({label})", out, base, failures)
        torchrun = os.path.join(tmp, "torchrun2")
        r = subprocess.run([TORCHRUN, "--no-python", "--standalone", "--nproc-per-node", "2", BIN, "train", model, "--data",
                            corpus, "--recipe", r1, "--out", torchrun, "--no-progress"], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"torchrun: exit {r.returncode}: {r.stderr.strip()[-600:]}")
        else:
            same_run("torchrun --nproc-per-node 2 vs 1 process", torchrun, base, failures)
        # ZeRO-1: the optimiser state sharded, the run unchanged; its checkpoints hold the whole state
        zero = os.path.join(tmp, "zero1")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", zero, "--nproc", "2", "--zero", "1",
                         "--no-progress")
        shares = re.findall(r"rank 0 keeps the optimiser state of (\d+) of (\d+) trained tensors \((\d+) of (\d+) parameters", r.stderr)
        if not shares or any(not 0 < int(own) < int(total) for _, _, own, total in shares):
            failures.append(f"--zero 1: rank 0 should hold part of the optimiser state, it said {shares or r.stderr.strip()}")
        else:
            print(f"  --zero 1: rank 0's share per phase (tensors, parameters): {shares}")
        same_run("--nproc 2 --zero 1 vs 1 process", zero, base, failures)
        zero_stop = os.path.join(tmp, "zero1_resumed")
        train(model, corpus, r1, zero_stop, "--nproc", "2", "--zero", "1", "--stop-after-steps", "2")
        check_checkpoint_shards(zero_stop, failures)
        zero_same = os.path.join(tmp, "zero1_resumed_on_2")
        train(model, corpus, r1, zero_same, "--nproc", "2", "--zero", "1", "--stop-after-steps", "2")
        run_moeforge("train", "--resume", zero_same, "--recipe", r1, "--nproc", "2", "--zero", "1", "--no-progress")
        same_run("--zero 1 for 2 steps, --resume with --zero 1", zero_same, base, failures)
        run_moeforge("train", "--resume", zero_stop, "--recipe", r2, "--no-progress")
        same_run("--zero 1 for 2 steps, --resume on 1 process", zero_stop, base, failures)
        one_to_zero = os.path.join(tmp, "one_to_zero1")
        train(model, corpus, r2, one_to_zero, "--stop-after-steps", "2")
        run_moeforge("train", "--resume", one_to_zero, "--recipe", r1, "--nproc", "2", "--zero", "1", "--no-progress")
        same_run("1 process for 2 steps, --resume with --zero 1", one_to_zero, base, failures)
        # ZeRO-2: gradients reduced to their owner only; the clip norm summed from the owners' shares
        zero2 = os.path.join(tmp, "zero2")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", zero2, "--nproc", "2", "--zero", "2",
                         "--no-progress", check=False)
        if r.returncode != 0 or "ZeRO-2: rank 0 keeps the optimiser state and gradients" not in r.stderr:
            failures.append(f"--zero 2: expected a run saying what rank 0 keeps, got {r.returncode}: {r.stderr.strip()[-300:]}")
        else:
            close_run("--nproc 2 --zero 2 vs 1 process", zero2, base, failures)
        zero2_stop = os.path.join(tmp, "zero2_resumed")
        train(model, corpus, r1, zero2_stop, "--nproc", "2", "--zero", "2", "--stop-after-steps", "2")
        run_moeforge("train", "--resume", zero2_stop, "--recipe", r2, "--no-progress")
        close_run("--zero 2 for 2 steps, --resume on 1 process", zero2_stop, base, failures)
        r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", os.path.join(tmp, "z2dump"), "--nproc", "2",
                         "--zero", "2", "--dump-steps", "1", check=False)
        if r.returncode != 1 or "--dump-steps" not in r.stderr:
            failures.append(f"--zero 2 --dump-steps: expected exit 1 naming --dump-steps, got {r.returncode}: {r.stderr.strip()}")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", os.path.join(tmp, "z4"), "--zero", "4",
                         check=False)
        if r.returncode != 1 or "3 (and frozen weights) exist" not in r.stderr:
            failures.append(f"--zero 4: expected exit 1 naming the stages, got {r.returncode}: {r.stderr.strip()}")
        for count, says in (("-1", "--nproc -1 must be at least 1"), ("100000", "each worker is a whole moeforge process")):
            out = os.path.join(tmp, f"nproc{count}")
            r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", out, "--nproc", count, check=False)
            lines = r.stderr.strip().splitlines()
            if r.returncode != 1 or len(lines) != 1 or says not in lines[0] or os.path.exists(out):
                failures.append(f"--nproc {count}: expected exit 1 and one line saying '{says}' before any worker, "
                                f"got {r.returncode}: {r.stderr.strip()[-300:]}")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", r1, "--out", os.path.join(tmp, "z3"), "--zero", "3",
                         check=False)
        if r.returncode != 1 or "use --zero 2 for LoRA" not in r.stderr or os.path.exists(os.path.join(tmp, "z3", "trainable.safetensors")):
            failures.append(f"--zero 3 with a LoRA phase: expected exit 1 naming LoRA, got {r.returncode}: {r.stderr.strip()}")
        # resume across world sizes: the data position is the global one
        two_on_one = os.path.join(tmp, "two_on_one")
        train(model, corpus, r1, two_on_one, "--nproc", "2", "--stop-after-steps", "2")
        run_moeforge("train", "--resume", two_on_one, "--recipe", r2, "--no-progress")
        same_run("2 ranks for 2 steps, --resume on 1 process", two_on_one, base, failures)
        one_on_two = os.path.join(tmp, "one_on_two")
        train(model, corpus, r2, one_on_two, "--stop-after-steps", "4")
        run_moeforge("train", "--resume", one_on_two, "--recipe", r1, "--nproc", "2", "--no-progress")
        same_run("1 process for 4 steps, --resume on 2 ranks", one_on_two, base, failures)
        # only rank 0 writes: no stray files from the other rank
        extra = sorted(set(os.listdir(nproc)) - set(os.listdir(base)))
        if extra:
            failures.append(f"--nproc 2 wrote files a one-process run does not: {extra}")
        # teacher-cache across ranks: each writes its share of the files; the cache is the one-process cache
        caches = {}
        for label, extra in (("1 process", []), ("--nproc 2", ["--nproc", "2"])):
            out = os.path.join(tmp, "cache_" + str(len(caches)))
            run_moeforge("teacher-cache", model, "--data", corpus, "--seq-len", "16", "--top-k", "8", "--file-gb", "0.00002",
                         "--out", out, "--no-progress", *extra)
            caches[label] = {name: read(os.path.join(out, name)) for name in sorted(os.listdir(out))}
        files = len(caches["1 process"])
        if caches["1 process"] != caches["--nproc 2"] or files < 4:
            failures.append(f"teacher-cache --nproc 2 differs from one process ({files} files)")
        print(f"  {'teacher-cache --nproc 2 vs 1 process':<52} {files} files, "
              f"{'identical' if caches['1 process'] == caches['--nproc 2'] else 'DIFFERENT'}")
        # eval across ranks (every N-th batch each; sums exchanged): the one-process report
        reports, trained = [], os.path.join(tmp, "trained_model")
        run_moeforge("merge-deltas", model, base, "--out", trained)
        for extra in ([], ["--nproc", "2"]):
            r = run_moeforge("eval", trained, "--baseline", model, "--data", corpus, "--block-size", "32", "--batch-size", "3",
                             "--json", "--no-progress", *extra)
            reports.append(json.loads(r.stdout))
        worst = json_difference(reports[0], reports[1])
        if not reports[0]["baseline"]["mean_kl"] > 0:
            failures.append(f"eval: the trained model should differ from its base: {reports[0]['baseline']}")
        print(f"  {'eval --baseline --nproc 2 vs 1 process':<52} max relative difference {worst:.1e}")
        if worst > 1e-9:
            failures.append(f"eval --nproc 2 differs from one process by {worst:.3g} (relative)")
        # stats across ranks: the same stats.json (timings aside) and router moments
        outs = []
        for extra in ([], ["--nproc", "2"]):
            outs.append(os.path.join(tmp, f"stats_{len(outs)}"))
            run_moeforge("stats", model, "--data", corpus, "--tokens", "2000", "--block-size", "32", "--batch-size", "3",
                         "--out", outs[-1], "--no-progress", *extra)
        stats = []
        for out in outs:
            with open(os.path.join(out, "stats.json")) as f:
                stats.append({k: v for k, v in json.load(f).items() if k != "timing"})
        worst = json_difference(stats[0], stats[1])
        moments = [read(os.path.join(out, "router_moments.safetensors")) for out in outs]
        print(f"  {'stats --nproc 2 vs 1 process':<52} max relative difference {worst:.1e}; moments "
              f"{'identical' if moments[0] == moments[1] else 'differ'}")
        if worst > 1e-9 or stats[0]["data"]["tokens"] != 2000 or moments[0] != moments[1]:
            failures.append(f"stats --nproc 2 differs from one process by {worst:.3g} (tokens {stats[0]['data']['tokens']})")
        r = run_moeforge("stats", model, "--data", corpus, "--tokens", "200", "--out", os.path.join(tmp, "stats_dump"), "--nproc",
                         "2", "--dump-probs", "--no-progress", check=False)
        if r.returncode != 1 or "--dump-probs runs in one process" not in r.stderr:
            failures.append(f"stats --nproc 2 --dump-probs: expected a refusal, got {r.returncode}: {r.stderr.strip()[-300:]}")
        expert_parallel(tmp, model, corpus, failures)
        kill_one_rank(tmp, model, corpus, failures)
    return finish("distributed training", failures, start, "data parallel over c10d Gloo equals one process")


if __name__ == "__main__":
    sys.exit(main())
