"""`moeforge pipeline` at toy size: upcycle a tiny dense Llama into a 4-expert MoE, collect stats,
train two phases, eval, export, report. Checks that the outputs exist and reload (transformers loads
the export; its logits match `moeforge forward`), that the upcycled MoE's step-0 loss equals the dense
base's, that training lowers validation loss, and that a run killed mid-training resumes with the
finished stages skipped and ends with the same weights as an uninterrupted run."""
import json
import os
import random
import signal
import subprocess
import tempfile
import time

import numpy as np
import torch
from safetensors.numpy import load_file

from train_common import BIN, fail, moeforge

TOPICS = {
    "animals": "the cat sat on a mat while the dog ran to the park and saw a bird fly over the tree".split(),
    "numbers": "one two three four five six seven eight nine ten plus minus equals twelve twenty".split(),
}

RECIPE = {
    "name": "toy-two-phase", "seed": 5, "threads": 1, "checkpoint_every": 3,
    "defaults": {"batch_size": 4, "seq_len": 32, "optimizer": {"lr": 1e-2}},
    "phases": [
        {"name": "experts", "steps": 8, "select": ["experts", "router"], "routing": {"router_noise_std": 0.01}},
        {"name": "all", "steps": 8, "select": ["experts", "router", "attention", "norms"],
         "schedule": {"type": "cosine", "warmup_steps": 2}},
    ],
}


def write_corpus(path):
    rng = random.Random(3)
    with open(path, "w") as f:
        for i in range(160):
            domain = "animals" if i % 2 else "numbers"
            words = TOPICS[domain]
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(40)), "domain": domain}) + "\n")


def make_base(tmp, corpus):
    tok = os.path.join(tmp, "tok")
    moeforge("tokenizer", "train", "--data", corpus, "--vocab", 300, "--out", tok)
    base = os.path.join(tmp, "dense")
    cfg = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "max_position_embeddings": 128}
    moeforge("init", "--family", "llama", "--config", json.dumps(cfg), "--tokenizer", tok, "--std", "0.1",
             "--seed", 1, "--out", base)
    return base


def write_config(tmp, base, corpus):
    config = {
        "base": base, "data": corpus, "seed": 2,
        "surgery": {"upcycle": {"experts": 4, "top_k": 2, "to": "mixtral"}},
        "stats": {"tokens": 1500, "block_size": 32},
        "recipe": RECIPE,
        "eval": {"block_size": 32, "validation_fraction": 0.1},
        "model_name": "toy-moe", "base_model_id": "acme/toy-dense",
    }
    path = os.path.join(tmp, "job.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def run_pipeline(config, out, env, check=True):
    return moeforge("pipeline", config, "--out", out, "--no-progress", env=env, check=check)


def check_outputs(run, failures):
    for name in ("pipeline.json", "upcycled", "stats_before", "plan.json", "train/summary.json", "model",
                 "eval.json", "stats_after", "export/README.md", "export/config.json", "report.html"):
        if not os.path.exists(os.path.join(run, name)):
            failures.append(f"missing output {name}")
    with open(os.path.join(run, "eval.json")) as f:
        ev = json.load(f)
    models = {m["label"]: m for m in ev["models"]}
    if set(models) != {"base", "after surgery", "trained"}:
        failures.append(f"eval.json models {sorted(models)}")
        return
    base, upcycled, trained = models["base"]["loss"], models["after surgery"]["loss"], models["trained"]["loss"]
    print(f"validation loss: dense {base:.5f}  upcycled {upcycled:.5f}  trained {trained:.5f}")
    if abs(base - upcycled) > 1e-4:
        failures.append(f"upcycled MoE's step-0 loss {upcycled} != dense {base}")
    if not trained < upcycled - 0.05:
        failures.append(f"training did not lower validation loss ({upcycled} -> {trained})")
    if ev["split"] != "validation":
        failures.append(f"eval split {ev['split']}")
    if set(models["trained"].get("domains", {})) != set(TOPICS):
        failures.append(f"per-domain eval {sorted(models['trained'].get('domains', {}))}")
    with open(os.path.join(run, "export", "README.md")) as f:
        card = f.read()
    if not card.startswith("---\nlibrary_name: transformers") or "toy-two-phase" not in card or f"{trained:.4f}" not in card:
        failures.append("model card lacks front matter, recipe or the measured loss")
    if 'base_model: "acme/toy-dense"' not in card or "base_model_relation: finetune" not in card:
        failures.append("model card lacks the base_model_id given in the job")
    if os.path.dirname(os.path.abspath(run)) in card:
        line = next(l for l in card.splitlines() if os.path.dirname(os.path.abspath(run)) in l)
        failures.append(f"model card names an absolute local path: {line}")


def check_export_reloads(run, failures):
    from transformers import AutoModelForCausalLM
    export = os.path.join(run, "export")
    model = AutoModelForCausalLM.from_pretrained(export, torch_dtype=torch.float32).eval()
    ids = [[5, 17, 42, 9, 100, 3, 250, 8]]
    with torch.no_grad():
        ref = model(torch.tensor(ids)).logits[0].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f.safetensors")
        moeforge("forward", export, "--ids", ",".join(map(str, ids[0])), "--out", out)
        ours = load_file(out)["logits"].reshape(ref.shape)
    diff = float(np.abs(ours - ref).max())
    print(f"export: transformers vs moeforge forward max |diff| {diff:.2e}")
    if diff > 1e-4:
        failures.append(f"exported model: transformers logits differ from moeforge forward by {diff}")


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        write_corpus(corpus)
        base = make_base(tmp, corpus)
        config = write_config(tmp, base, corpus)
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))

        full = os.path.join(tmp, "full")
        first = run_pipeline(config, full, env)
        check_outputs(full, failures)
        check_export_reloads(full, failures)
        again = run_pipeline(config, full, env)
        for stage in ("upcycle", "stats_before", "analyze", "train", "merge", "eval", "stats_after", "export"):
            if f"== {stage}: skipped" not in again.stdout:
                failures.append(f"re-run of a finished pipeline did not skip {stage}")

        # Interrupt: kill -9 once training has written a checkpoint, then re-run.
        cut = os.path.join(tmp, "cut")
        # Popen, not run_moeforge: the process is killed while it runs.
        proc = subprocess.Popen([BIN, "pipeline", config, "--out", cut, "--no-progress"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(os.path.join(cut, "train", "checkpoints", "latest")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
        if os.path.exists(os.path.join(cut, "train", "summary.json")) or not os.path.exists(os.path.join(cut, "train")):
            failures.append("the kill did not land inside the training stage (test timing)")
        resumed = run_pipeline(config, cut, env)
        if "resuming" not in resumed.stderr:
            failures.append(f"re-run after kill -9 did not resume training from its checkpoint: {resumed.stderr[-300:]}")
        for stage in ("upcycle", "stats_before", "analyze"):
            if f"== {stage}: skipped" not in resumed.stdout:
                failures.append(f"resume did not skip finished stage {stage}")
        a = load_file(os.path.join(full, "train", "trainable.safetensors"))
        b = load_file(os.path.join(cut, "train", "trainable.safetensors"))
        if set(a) != set(b) or any(not np.array_equal(a[k], b[k]) for k in a):
            failures.append("interrupted + resumed pipeline trained different weights than the uninterrupted one")

        # A changed job must not reuse the run directory.
        with open(config) as f:
            job = json.load(f)
        job["seed"] = 99
        changed = os.path.join(tmp, "changed.json")
        with open(changed, "w") as f:
            json.dump(job, f)
        r = run_pipeline(changed, full, env, check=False)
        if r.returncode == 0 or "different pipeline config" not in r.stderr:
            failures.append(f"re-run with a changed config was not refused: {r.stderr.strip()}")
        # Config errors name the field.
        job = {"base": base, "data": corpus, "surgery": {"upcycle": {"experts": 1}}}
        with open(changed, "w") as f:
            json.dump(job, f)
        r = run_pipeline(changed, os.path.join(tmp, "bad"), env, check=False)
        if r.returncode == 0 or "surgery.upcycle.experts: must be >= 2" not in r.stderr:
            failures.append(f"bad config error does not name the field: {r.stderr.strip()}")
    fail(failures)


if __name__ == "__main__":
    main()
