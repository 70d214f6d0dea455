"""Runs the moeforge binary under test (MOEFORGE_BIN, default build/moeforge) for the parity scripts."""
import os
import subprocess

BIN = os.environ.get("MOEFORGE_BIN", os.path.join(os.path.dirname(__file__), "../../build/moeforge"))


def moeforge(*args, expect_ok=True):
    """Runs `moeforge ARGS`; returns (returncode, stdout + stderr)."""
    result = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)
    text = result.stdout + result.stderr
    if expect_ok and result.returncode != 0:
        raise RuntimeError(f"moeforge {' '.join(map(str, args))} failed: {text.strip()}")
    return result.returncode, text
