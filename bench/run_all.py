#!/usr/bin/env python3
"""Runs every benchmark driver bench/*_bench.py one after the other against one build, then prints
each one's ratio lines together (`make bench`).

Usage (from the repository root):
    .venv/bin/python bench/run_all.py --build build [--only tokenizer,checkpoint_read] [--skip train]

Each driver gets the build the way it takes it: `--build DIR` when it has that flag, `--moeforge
DIR/moeforge` when it has that one, and MOEFORGE_BIN=DIR/moeforge in the environment always (the
drivers that read it). Drivers run with this Python, their output streamed as it comes; a failing
driver is reported and the rest still run. Exit status: 1 if any driver failed.
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def drivers():
    return sorted(f[: -len("_bench.py")] for f in os.listdir(HERE) if f.endswith("_bench.py"))


def command(name, build):
    script = os.path.join(HERE, f"{name}_bench.py")
    source = open(script, encoding="utf-8").read()
    cmd = [sys.executable, script]
    if re.search(r"""add_argument\(\s*["']--build["']""", source):
        cmd += ["--build", build]
    elif re.search(r"""add_argument\(\s*["']--moeforge["']""", source):
        cmd += ["--moeforge", os.path.join(build, "moeforge")]
    return cmd


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build", help="build directory holding moeforge")
    parser.add_argument("--only", default="", help="comma-separated driver names (tokenizer, train, ...)")
    parser.add_argument("--skip", default="", help="comma-separated driver names to leave out")
    args = parser.parse_args()

    names = drivers()
    only = [n for n in args.only.split(",") if n]
    skip = {n for n in args.skip.split(",") if n}
    for n in only + sorted(skip):
        if n not in names:
            sys.exit(f"run_all: no driver bench/{n}_bench.py (have: {', '.join(names)})")
    names = [n for n in (only or names) if n not in skip]
    build = os.path.abspath(args.build)
    env = dict(os.environ, MOEFORGE_BIN=os.path.join(build, "moeforge"))
    results = []
    for name in names:
        cmd = command(name, build)
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=os.path.dirname(HERE))
        lines = []
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
        code = proc.wait()
        ratios = [line.strip() for line in lines if re.search(r"ratio", line, re.IGNORECASE)]
        results.append((name, code, time.perf_counter() - start, ratios))

    print("\n=== summary")
    for name, code, seconds, ratios in results:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name}: {status}, {seconds:.0f} s")
        for line in ratios:
            print(f"    {line}")
    sys.exit(1 if any(code for _, code, _, _ in results) else 0)


if __name__ == "__main__":
    main()
