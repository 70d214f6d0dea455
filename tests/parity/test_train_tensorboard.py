"""TensorBoard's own reader parses moeforge's event files, and its scalars equal metrics.jsonl."""
import json
import os
import tempfile

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from train_common import fail, make_setup, moeforge, write_recipe

RECIPE = {"seed": 1, "threads": 1,
          "phases": [{"steps": 5, "batch_size": 2, "seq_len": 16, "select": "router + experts=0:1", "optimizer": {"lr": 1e-2}}]}


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, corpus = make_setup(tmp)
        run = os.path.join(tmp, "run")
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        moeforge("train", model_dir, "--data", corpus, "--recipe", write_recipe(os.path.join(tmp, "r.json"), RECIPE),
                 "--out", run, "--no-progress", env=env)
        with open(os.path.join(run, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
        acc = EventAccumulator(os.path.join(run, "tensorboard"))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        for key in ("loss", "ce", "lb", "z", "lr", "grad_norm", "tokens_per_s", "balance", "router_drift"):
            tag = "train/" + key
            if tag not in tags:
                failures.append(f"missing scalar {tag} (have {sorted(tags)})")
                continue
            events = acc.Scalars(tag)
            if [e.step for e in events] != [r["step"] for r in records]:
                failures.append(f"{tag}: steps {[e.step for e in events]}")
            for e, r in zip(events, records):
                if abs(e.value - r[key]) > 1e-6 * max(1.0, abs(r[key])):
                    failures.append(f"{tag} step {e.step}: {e.value} vs {r[key]}")
        if "balance/moe_layer_1" not in tags:
            failures.append("per-layer balance scalars missing")
        print(f"{len(tags)} scalar tags, {len(records)} steps read back")
    fail(failures)


if __name__ == "__main__":
    main()
