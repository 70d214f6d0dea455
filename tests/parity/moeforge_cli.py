"""Runs the moeforge binary under test for the parity scripts (and the benches that import them):
the one place that knows where it is (env MOEFORGE_BIN, default build/moeforge) and how to call it."""
import os
import subprocess
import sys

BIN = os.path.abspath(os.environ.get("MOEFORGE_BIN", os.path.join(os.path.dirname(__file__), "../../build/moeforge")))


def _as_text(output):
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_moeforge(*args, check=True, **kwargs):
    """Runs `moeforge ARGS`; returns the subprocess.CompletedProcess. Output is captured as text unless kwargs
    say otherwise; kwargs (env, cwd, input, timeout, ...) go to subprocess.run. With check, a non-zero exit
    raises RuntimeError naming the command, with its stdout + stderr."""
    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([BIN, *map(str, args)], **kwargs)
    if check and result.returncode != 0:
        output = _as_text(result.stdout) + _as_text(result.stderr)
        raise RuntimeError(f"moeforge {' '.join(map(str, args))} failed ({result.returncode}): {output.strip()}")
    return result


def moeforge(*args, expect_ok=True):
    """Runs `moeforge ARGS`; returns (returncode, stdout + stderr)."""
    result = run_moeforge(*args, check=False)
    text = result.stdout + result.stderr
    if expect_ok and result.returncode != 0:
        raise RuntimeError(f"moeforge {' '.join(map(str, args))} failed: {text.strip()}")
    return result.returncode, text


def finish(name, failures, start, summary):
    """Prints the failures (or `summary` and the time since `start`); returns the exit code."""
    import time
    elapsed = time.time() - start
    if failures:
        print(f"{name} FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"{name}: {summary} ({elapsed:.1f}s)")
    return 0


def peak_rss(*args, stdout=False):
    """Runs `moeforge ARGS` in a child Python; returns (its peak RSS in bytes, from the kernel's accounting
    of that child, and its stderr), with stdout=True (RSS, moeforge's stdout, stderr). A non-zero exit
    raises RuntimeError with the stderr's tail."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(r.stderr); sys.exit(r.returncode) if r.returncode else "
            "print(r.stdout + chr(10) + str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))")
    out = subprocess.run([sys.executable, "-c", code, BIN, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"moeforge {' '.join(map(str, args))} failed: {out.stderr.strip()[-500:]}")
    child_stdout, _, rss = out.stdout.rstrip().rpartition("\n")
    return (int(rss), child_stdout, out.stderr) if stdout else (int(rss), out.stderr)
