"""`moeforge pipeline` with `distill` (issue 15): upcycle a tiny dense Llama into a 4-expert MoE, cache
the dense teacher (the base) once, train from the cache, evaluate against the teacher.

Checks:
- the teacher_cache stage writes `teacher_cache/` for exactly the training blocks (tokens = blocks x
  seq_len) with the recipe's seed and validation fraction, and `teacher-cache --inspect` calls it complete;
- training reads it (run.json names it; metrics.jsonl has kd/kl/agreement); the upcycled MoE computes
  its dense teacher exactly (copy experts, zero router), so step 0's KL to the cached teacher is only the
  cache's bf16 rounding (< 1e-3 nats) and its top-1 agreement is ~1;
- eval.json has, for the trained model vs the base (its teacher), KL, top-1 agreement and router drift;
  the upcycled copy vs the base has KL ~0 and agreement 1;
- a re-run skips every finished stage; a job whose distilling phases have two seq_len values is refused
  before any stage (exit 1, one line naming the config).
Env: MOEFORGE_BIN. Exit 0 = pass.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_pipeline import make_base, write_corpus  # noqa: E402
from train_common import fail, moeforge  # noqa: E402

RECIPE = {
    "seed": 4, "threads": 1,
    "defaults": {"batch_size": 4, "seq_len": 32, "optimizer": {"lr": 1e-2}},
    "phases": [{"name": "kd", "steps": 6, "select": ["experts", "router"],
                "losses": {"distill": {"weight": 1.0, "ce_weight": 0.5, "temperature": 2.0}}}],
}


def job(tmp, base, corpus, name, recipe):
    config = {"base": base, "data": corpus, "seed": 1,
              "surgery": {"upcycle": {"experts": 4, "top_k": 2, "to": "mixtral"}},
              "distill": {"cache": {"top_k": 16}}, "recipe": recipe,
              "eval": {"block_size": 32, "validation_fraction": 0.1}, "report": False}
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        write_corpus(corpus)
        base = make_base(tmp, corpus)
        config = job(tmp, base, corpus, "job.json", RECIPE)
        run = os.path.join(tmp, "run")
        out = moeforge("pipeline", config, "--out", run, "--no-progress").stdout
        for stage in ("upcycle", "teacher_cache", "train", "merge", "eval", "export"):
            if f"== {stage}\n" not in out:
                failures.append(f"stage {stage} did not run: {out[-2000:]}")

        summary = json.load(open(os.path.join(run, "teacher_cache.json")))
        m, d = summary["manifest"], summary["manifest"]["data"]
        if (m["top_k"], d["seed"], d["block_size"], d["validation_fraction"]) != (16, 4, 32, 0.1):
            failures.append(f"cache manifest: top_k {m['top_k']}, data {d}")
        if summary["tokens_written"] != d["train_blocks"] * 32 or d["train_blocks"] < 4:
            failures.append(f"cache tokens {summary['tokens_written']} for {d['train_blocks']} blocks of 32")
        inspect = moeforge("teacher-cache", "--inspect", os.path.join(run, "teacher_cache")).stdout
        if "complete" not in inspect or "top-16 of 300" not in inspect:
            failures.append(f"inspect: {inspect}")

        run_json = json.load(open(os.path.join(run, "train", "run.json")))
        if os.path.realpath(run_json.get("teacher_cache", "")) != os.path.realpath(os.path.join(run, "teacher_cache")):
            failures.append(f"run.json teacher_cache: {run_json.get('teacher_cache')}")
        metrics = [json.loads(x) for x in open(os.path.join(run, "train", "metrics.jsonl")) if '"kd"' in x]
        if len(metrics) != 6:
            failures.append(f"{len(metrics)} metrics lines with kd, want 6")
        elif not (metrics[0]["kl"] < 1e-3 and metrics[0]["agreement"] > 0.99):
            failures.append(f"step 0 vs the cached dense teacher: kl {metrics[0]['kl']}, agreement {metrics[0]['agreement']}")

        ev = json.load(open(os.path.join(run, "eval.json")))
        trained = [x for x in ev["models"] if x["label"] == "trained"]
        if not trained or not all(k in trained[0]["baseline"] for k in ("mean_kl", "top1_agreement", "router_drift")):
            failures.append(f"eval.json trained entry: {trained}")
        upcycled = [x for x in ev["models"] if x["label"] == "after surgery"]
        # The upcycled copy computes its dense base: KL ~0, every argmax the same; no router to drift from.
        if not upcycled or upcycled[0]["baseline"]["mean_kl"] > 1e-6 or upcycled[0]["baseline"]["top1_agreement"] != 1.0 \
                or upcycled[0]["baseline"]["router_drift"]:
            failures.append(f"eval.json after surgery vs base: {upcycled and upcycled[0]['baseline']}")

        again = moeforge("pipeline", config, "--out", run, "--no-progress").stdout
        if "== teacher_cache: skipped" not in again or "== train: skipped" not in again:
            failures.append(f"re-run did not skip finished stages: {again[-1500:]}")

        bad = dict(RECIPE, phases=RECIPE["phases"] + [dict(RECIPE["phases"][0], name="kd2", seq_len=16)])
        r = moeforge("pipeline", job(tmp, base, corpus, "bad.json", bad), "--out", os.path.join(tmp, "bad"), "--no-progress",
                     check=False)
        text = (r.stdout + r.stderr).strip()
        if r.returncode != 1 or "bad.json" not in text or "seq_len" not in text or "== " in text:
            failures.append(f"two seq_len values: exit {r.returncode}: {text!r}")
    fail(failures)


if __name__ == "__main__":
    main()
