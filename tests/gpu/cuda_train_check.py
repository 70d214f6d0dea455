"""CUDA training check (run on a GPU machine by tools/gpu_check.sh; CI has no GPU).
On a tiny Mixtral (two phases: full expert slice + router with noise, then LoRA on attention):
  - `moeforge train --device cuda` in fp32 against the same run on CPU (losses, trained tensors);
  - precision bf16 on CUDA against bf16 on CPU and against fp32 (losses), trainable.safetensors in fp32;
  - --stop-after-steps then --resume on CUDA, with router noise (the CUDA generator), against the
    uninterrupted CUDA run (CUDA index_add is not bitwise deterministic, so within 1e-5).

    MOEFORGE_BIN=build/moeforge python3 tests/gpu/cuda_train_check.py
(MOEFORGE_CHECK_DEVICE=cpu runs the script itself on a machine without a GPU.)
"""
import json
import os
import sys
import tempfile

from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parity"))
from train_common import make_setup, moeforge, write_recipe  # noqa: E402

DEVICE = os.environ.get("MOEFORGE_CHECK_DEVICE", "cuda")


def recipe(precision, noise):
    return {"seed": 5, "threads": 2, "checkpoint_every": 2, "precision": precision,
            "defaults": {"batch_size": 4, "seq_len": 32, "optimizer": {"lr": 3e-3}},
            "phases": [{"steps": 4, "select": "experts=1:0 + router", "routing": {"router_noise_std": noise}},
                       {"steps": 4, "select": "attention", "method": "lora", "lora": {"rank": 2}}]}


def run(tmp, model, corpus, name, device, precision, stop=0, noise=0.0):
    out = os.path.join(tmp, name)
    r = write_recipe(os.path.join(tmp, name + ".json"), recipe(precision, noise))
    args = ["train", model, "--data", corpus, "--recipe", r, "--out", out, "--device", device, "--no-progress"]
    if stop:
        moeforge(*args, "--stop-after-steps", stop)
        moeforge("train", "--resume", out, "--no-progress")
    else:
        moeforge(*args)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        losses = {}
        for line in f:
            rec = json.loads(line)
            losses[rec["step"]] = rec["loss"]
    return [losses[k] for k in sorted(losses)], load_file(os.path.join(out, "trainable.safetensors"))


def max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def main():
    failures = []

    def check(label, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {detail}")
        if not ok:
            failures.append(label)

    with tempfile.TemporaryDirectory() as tmp:
        model, corpus = make_setup(tmp)
        cpu32, cpu32_t = run(tmp, model, corpus, "cpu32", "cpu", "fp32")
        gpu32, gpu32_t = run(tmp, model, corpus, "gpu32", DEVICE, "fp32")
        loss_diff = max(abs(a - b) / abs(a) for a, b in zip(cpu32, gpu32))
        check("fp32 cuda vs cpu losses", loss_diff < 1e-4, f"max relative diff {loss_diff:.2e}")
        check("fp32 cuda vs cpu trained tensors", max_diff(cpu32_t, gpu32_t) < 1e-4, f"max abs diff {max_diff(cpu32_t, gpu32_t):.2e}")

        cpu16, _ = run(tmp, model, corpus, "cpu16", "cpu", "bf16")
        gpu16, gpu16_t = run(tmp, model, corpus, "gpu16", DEVICE, "bf16")
        d16 = max(abs(a - b) / abs(a) for a, b in zip(cpu16, gpu16))
        check("bf16 cuda vs cpu losses", d16 < 1e-2, f"max relative diff {d16:.2e}")
        d = max(abs(a - b) / abs(a) for a, b in zip(gpu32, gpu16))
        check("bf16 vs fp32 on cuda losses", d < 2e-2, f"max relative diff {d:.2e}")
        dtypes = {str(t.dtype) for t in gpu16_t.values()}
        check("bf16 run exports fp32 masters", dtypes == {"torch.float32"}, f"dtypes {dtypes}")

        # Router noise draws on the device generator, whose state the checkpoints carry.
        _, noisy_t = run(tmp, model, corpus, "gpu32_noise", DEVICE, "fp32", noise=0.1)
        for stop in (3, 6):
            _, resumed = run(tmp, model, corpus, f"gpu32_resume{stop}", DEVICE, "fp32", stop=stop, noise=0.1)
            diff = max_diff(noisy_t, resumed)
            check(f"cuda resume after step {stop}", diff < 1e-5, f"max abs diff vs uninterrupted {diff:.2e}")
    print("FAILURES: " + ", ".join(failures) if failures else "all CUDA training checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
