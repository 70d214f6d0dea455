"""kill -9 at a random step of `moeforge train`, then `--resume`: trainable.safetensors and the
LoRA adapter must be byte-identical to an uninterrupted run's (CPU, same thread count). The killed
runs start in the data's directory with relative paths and resume from another directory. Then the
same for distillation from a teacher cache (token + router KD at T 2, SFA every 2 steps)."""
import os
import random
import signal
import subprocess
import tempfile
import time

from train_common import BIN, fail, make_setup, moeforge, read, write_recipe

RECIPE = {
    "seed": 11, "threads": 1, "checkpoint_every": 1,
    "defaults": {"batch_size": 2, "seq_len": 16, "optimizer": {"lr": 1e-2}},
    "phases": [
        {"steps": 6, "select": "experts=1:0 + router + norms", "routing": {"router_noise_std": 0.05, "aux_free_gamma": 0.001}},
        {"steps": 6, "select": "attention", "method": "lora", "lora": {"rank": 2},
         "schedule": {"type": "cosine", "warmup_steps": 2}},
    ],
}


def latest_step(run):
    try:
        with open(os.path.join(run, "checkpoints", "latest")) as f:
            return int(f.read().strip().split("-")[1])
    except (OSError, ValueError, IndexError):
        return 0


DISTILL_RECIPE = {
    "seed": 5, "threads": 1, "checkpoint_every": 1,
    "defaults": {"batch_size": 2, "seq_len": 16, "optimizer": {"lr": 1e-2}},
    "phases": [
        {"steps": 10, "select": "experts + router",
         "losses": {"distill": {"temperature": 2.0, "router_weight": 0.5, "ce_weight": 0.5}},
         "sfa": {"alpha": 0.25, "every": 2}},
    ],
}


def kill_and_resume(tmp, label, model, corpus, recipe, steps, env, rng, failures, extra=()):
    full = os.path.join(tmp, "full_" + label)
    moeforge("train", model, "--data", corpus, "--recipe", recipe, "--out", full, "--no-progress", *extra, env=env)
    for attempt in range(2):
        run = os.path.join(tmp, f"killed_{label}{attempt}")
        target = rng.randint(1, steps - 2)
        # Popen, not run_moeforge: the process is killed while it runs.
        log_path = run + ".log"  # the killed process's stderr, shown if the resume fails
        with open(log_path, "w") as log:
            proc = subprocess.Popen([BIN, "train", os.path.basename(model), "--data", os.path.basename(corpus), "--recipe",
                                     recipe, "--out", run, "--no-progress", *extra],
                                    env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
        while proc.poll() is None and latest_step(run) < target:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = latest_step(run)
        if os.path.exists(os.path.join(run, "trainable.safetensors")):
            failures.append(f"the run finished before the kill (target step {target}); nothing was tested")
            continue
        try:
            moeforge("train", "--resume", run, "--no-progress", env=env, cwd="/")
        except RuntimeError as error:
            failures.append(f"{label}: --resume after kill -9 near step {killed_at} (exit {proc.returncode}) failed: {error}; "
                            f"the killed run said: {open(log_path).read()[-600:]}")
            continue
        for name in ("trainable.safetensors", "adapter_model.safetensors"):
            if os.path.exists(os.path.join(full, name)) and read(os.path.join(full, name)) != read(os.path.join(run, name)):
                failures.append(f"{label}: {name} differs after kill -9 near step {killed_at} and --resume")
        print(f"{label}: killed near step {killed_at}: resumed run {'matches' if not failures else 'DIFFERS'}")


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model, corpus = make_setup(tmp)
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        rng = random.Random(int(os.environ.get("SEED", time.time())))
        kill_and_resume(tmp, "lora", model, corpus, write_recipe(os.path.join(tmp, "r.json"), RECIPE), 12, env, rng, failures)
        # Distillation from a cache of the model itself (router top-2 kept), written with the recipe's data options.
        drecipe = write_recipe(os.path.join(tmp, "d.json"), DISTILL_RECIPE)
        cache = os.path.join(tmp, "teacher_cache")
        moeforge("teacher-cache", model, "--data", corpus, "--recipe", drecipe, "--top-k", 12, "--router-top-k", 2, "--out", cache,
                 "--no-progress", env=env)
        kill_and_resume(tmp, "distill", model, corpus, drecipe, 10, env, rng, failures, ("--teacher-cache", cache))
    fail(failures)


if __name__ == "__main__":
    main()
