"""bf16 on a CPU without AVX512-BF16 or AMX: libtorch's bf16 matrix products run in software there, 40-60x
slower than fp32 (an AVX2-only AMD EPYC, one thread: ~1-1.5 vs ~57 GFLOP/s). A model loaded in bf16 on the CPU says so, once,
in one note; in fp32, or on a CPU with the hardware, it says nothing. The expectation comes from this
script's own reading of /proc/cpuinfo's flags, and the bf16 run's logits still match the fp32 run's.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from moeforge_cli import finish, run_moeforge  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

NOTE = "bf16 on a CPU without AVX512-BF16 or AMX"


def cpu_has_bf16_matmul():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return True


def main():
    start = time.time()
    failures = []
    work = tempfile.mkdtemp(prefix="moeforge_bf16_note_")
    try:
        model = os.path.join(work, "mixtral")
        build_tiny_model("mixtral", model)
        logits = {}
        for dtype in ("fp32", "bf16"):
            out = os.path.join(work, f"{dtype}.safetensors")
            r = run_moeforge("forward", model, "--ids", "1,2,3,4", "--dtype", dtype, "--out", out)
            notes = r.stderr.count(NOTE)
            want = 1 if dtype == "bf16" and not cpu_has_bf16_matmul() else 0
            if notes != want:
                failures.append(f"--dtype {dtype}: {notes} notes (CPU bf16 hardware: {cpu_has_bf16_matmul()}), expected {want}: "
                                f"{r.stderr.strip()[-300:]}")
            logits[dtype] = load_file(out)["logits"].float()
        diff = (logits["bf16"] - logits["fp32"]).abs().max().item()
        scale = logits["fp32"].abs().max().item()
        if diff > 0.05 * scale:
            failures.append(f"bf16 logits differ from fp32 by {diff:.3g} (max |logit| {scale:.3g})")
        print(f"  CPU has bf16 matmul hardware: {cpu_has_bf16_matmul()}; bf16 vs fp32 logits max diff {diff:.3g}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_cpu_bf16_note", failures, start, "bf16 on a CPU without the hardware is said once")


if __name__ == "__main__":
    sys.exit(main())
