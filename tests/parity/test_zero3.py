"""ZeRO-3 (`train --zero 3`, issue 16): every frozen layer matrix, the embedding and the LM head split
over the ranks, each layer's shards all-gathered just before it runs and the layer recomputed in the
backward, the embedding rows fetched from the ranks that hold them, the head made whole for the loss.
On a tiny Mixtral, three full-weight phases (router + experts with router noise, then attention, then
the LM head, each of which an earlier phase had split):
- one process with --zero 3 (nothing to split, every layer recomputed) equals a plain run bitwise:
  losses, gradient norms and trainable.safetensors; the router noise the recompute draws is the
  forward's (the generator's state is replayed);
- 2 ranks with --zero 3 and 2 ranks with --zero 2 equal one process on the same global batch bitwise
  (each micro-batch draws its own noise on whichever rank runs it); rank 0 says what it split at
  load (every matrix of the file but the routers, embedding and head included), and its share is half;
- the same with tied embeddings and a vocabulary of 301 rows (the last rank's shard padded), against
  plain 2-rank data parallel: the tie survives the split, and phase 3 trains the embedding through it;
- a --zero 3 run of 2 ranks stopped after 2 steps resumes on 1 process to the same result;
- distilling from an online teacher, --zero 3 splits the teacher's weights too (rank 0 says how
  much: every matrix of its file but the routers) and equals --zero 2 bitwise;
- --zero 3 with --expert-parallel is refused before any worker starts, in one line.
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
            "phases": [first, dict(phase, name="attention", steps=2, select="attention"),
                       dict(phase, name="head", steps=2, select="lm_head")]}


def split_at_load(model):
    """Bytes of the matrices `--zero 3` splits as it loads (nothing trains yet): all but the routers."""
    from safetensors import safe_open
    with safe_open(os.path.join(model, "model.safetensors"), "np") as f:
        return sum(f.get_tensor(k).nbytes for k in f.keys() if f.get_tensor(k).ndim == 2 and ".gate." not in k)


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

        def train(out, accum, *extra, model=model):
            r = run_moeforge("train", model, "--data", corpus, "--recipe", recipes[accum], "--out",
                             os.path.join(tmp, out), "--no-progress", *extra)
            return os.path.join(tmp, out), r.stderr

        def check_split(label, note, model):
            split = SPLIT.search(note)
            if not split:
                failures.append(f"{label}: rank 0 did not say what it split: {note.strip()[-300:]}")
                return
            whole = float(split.group(1)) * UNITS[split.group(2)]
            each = float(split.group(3)) * UNITS[split.group(4)]
            want = split_at_load(model)
            print(f"  {label}: {split.group(0)} (the file's matrices but the routers: {want} B)")
            if abs(whole - want) > 0.005 * want:
                failures.append(f"{label}: split {whole:.0f} B at load, the file's matrices but the routers are {want} B")
            if abs(each - whole / 2) > 0.02 * whole:
                failures.append(f"{label}: each of 2 ranks should hold half of what is split: {split.group(0)}")

        plain, _ = train("plain", 2)
        one, note = train("zero3_one_process", 2, "--zero", "3")
        if "--zero 3 in one process" not in note:
            failures.append(f"--zero 3 in one process: no note saying nothing is split: {note.strip()[-300:]}")
        same_run("1 process --zero 3 vs plain (router noise)", one, plain, failures)

        zero2, _ = train("zero2_two", 1, "--nproc", "2", "--zero", "2")
        zero3, note = train("zero3_two", 1, "--nproc", "2", "--zero", "3")
        same_run("--nproc 2 --zero 2 vs 1 process (same global batch)", zero2, plain, failures)
        same_run("--nproc 2 --zero 3 vs 1 process (same global batch)", zero3, plain, failures)
        check_split("--nproc 2 --zero 3", note, model)

        os.makedirs(os.path.join(tmp, "tied"))
        tied_model, _ = make_setup(os.path.join(tmp, "tied"), config={"tie_word_embeddings": True, "vocab_size": 301})
        # A trained tied embedding sums its head and lookup gradients in a different order on 2 ranks
        # than over 2 micro-batches of one process (last bits): ZeRO-3 is held to plain 2-rank DP.
        tied_dp, _ = train("tied_dp", 1, "--nproc", "2", model=tied_model)
        tied_zero3, note = train("tied_zero3", 1, "--nproc", "2", "--zero", "3", model=tied_model)
        same_run("tied, vocab 301: --nproc 2 --zero 3 vs --nproc 2", tied_zero3, tied_dp, failures)
        check_split("tied, vocab 301", note, tied_model)

        stopped, _ = train("zero3_stopped", 1, "--nproc", "2", "--zero", "3", "--stop-after-steps", "2")
        run_moeforge("train", "--resume", stopped, "--recipe", recipes[2], "--no-progress")
        same_run("--zero 3 on 2 ranks for 2 steps, --resume on 1 process", stopped, plain, failures)

        # An online teacher (another init of the same shapes and tokenizer): split as the student's frozen weights.
        teacher = os.path.join(tmp, "teacher")
        run_moeforge("init", "--family", "mixtral", "--config", json.dumps({"hidden_size": 32, "intermediate_size": 48,
                     "num_attention_heads": 4, "num_key_value_heads": 2}), "--tokenizer", os.path.join(tmp, "tok"),
                     "--std", "0.1", "--seed", 11, "--out", teacher)
        distilled = {}
        for zero in ("2", "3"):
            distilled[zero], note = train(f"distill_zero{zero}", 1, "--nproc", "2", "--zero", zero, "--teacher", teacher)
        same_run("online teacher: --nproc 2 --zero 3 vs --zero 2", distilled["3"], distilled["2"], failures)
        split = TEACHER_SPLIT.search(note)
        want = split_at_load(teacher)
        if not split or abs(float(split.group(1)) * UNITS[split.group(2)] - want) > 0.005 * want:
            failures.append(f"--zero 3 with a teacher: rank 0 should say it split the teacher's {want} B: {note.strip()[-300:]}")
        else:
            print(f"  {split.group(0)} (the teacher file's matrices but the routers: {want} B)")

        out = os.path.join(tmp, "refused")
        r = run_moeforge("train", model, "--data", corpus, "--recipe", recipes[1], "--out", out, "--nproc", "2",
                         "--zero", "3", "--expert-parallel", "--no-progress", check=False)
        lines = r.stderr.strip().splitlines()  # refused before the workers start: one line, not one per rank
        if r.returncode != 1 or len(lines) != 1 or "--zero 3 with --expert-parallel is not supported" not in lines[0]:
            failures.append(f"--zero 3 --expert-parallel: expected exit 1 naming both, got {r.returncode}: {r.stderr.strip()[-300:]}")
    return finish("test_zero3", failures, start, "ZeRO-3 runs equal the unsplit runs")


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
TEACHER_SPLIT = re.compile(r"ZeRO-3: the teacher's weights of ([\d.]+) (\w+) split over 2 ranks")
SPLIT = re.compile(r"ZeRO-3: frozen weights of ([\d.]+) (\w+) split over 2 ranks \(([\d.]+) (\w+) on each\)")


if __name__ == "__main__":
    sys.exit(main())
