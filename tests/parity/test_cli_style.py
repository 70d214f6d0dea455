"""One CLI style across commands: `moeforge --help` lists every command under a task group; an
unknown command is named (with the nearest command when there is one) and points to --help; a bad
flag is one line naming the command's --help, exit 1; `--no-progress` is accepted by every command
and silences the progress display, which otherwise prints one line per 10 % when stderr is piped.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import finish, run_moeforge  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GROUPS = ["Pipeline", "Surgery", "Analysis", "Training", "Evaluation", "Data and tokenizers", "Inspection", "Sharing"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def main():
    start = time.time()
    help_text = run_moeforge("--help").stdout
    sections, current = {}, None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            sections[current] = []
        elif current and line.startswith("  ") and current not in ("Options",):
            sections[current].append(line.split()[0])
    for g in GROUPS:
        check(sections.get(g), f"--help has no '{g}' group: {sorted(sections)}")
    commands = [c for g in GROUPS for c in sections.get(g, [])]
    check("Other" not in sections and "Subcommands" not in sections, f"ungrouped commands: {sections.get('Other')}")
    check({"pipeline", "upcycle", "merge", "train", "eval", "stats", "data", "info"} <= set(commands),
          f"commands missing from the groups: {commands}")
    check("TOML" in run_moeforge("pipeline", "--help").stdout or ".toml" in run_moeforge("pipeline", "--help").stdout,
          "pipeline --help does not mention TOML")

    r = run_moeforge("trian", check=False)
    check(r.returncode == 1 and "unknown command 'trian' (did you mean 'train'?)" in r.stderr and "moeforge --help" in r.stderr,
          f"unknown command: rc {r.returncode}: {r.stderr.strip()}")
    r = run_moeforge("frobnicate", check=False)
    check(r.returncode == 1 and "unknown command 'frobnicate'; see `moeforge --help`" in r.stderr,
          f"unknown command without a near miss: rc {r.returncode}: {r.stderr.strip()}")
    r = run_moeforge("eval", "--bogus", check=False)
    check(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "moeforge eval --help" in r.stderr,
          f"bad flag: rc {r.returncode}: {r.stderr.strip()}")

    for command in commands:  # accepted by every command (parsing only: --help stops before any work)
        r = run_moeforge(command, "--no-progress", "--help", check=False)
        check(r.returncode == 0, f"{command} rejects --no-progress: {r.stderr.strip()}")

    base, corpus = os.path.join(ROOT, "data", "base"), os.path.join(ROOT, "data", "corpus")
    args = ["eval", base, "--data", corpus, "--max-blocks", 20, "--block-size", 32]
    r = run_moeforge(*args)
    lines = [l for l in r.stderr.splitlines() if l.startswith("eval: ")]
    percents = [int(l.split()[1].rstrip("%")) for l in lines]
    check(2 <= len(lines) <= 11 and percents == sorted(set(percents)) and lines[-1].startswith("eval: 100% 20/20 sequences")
          and "ETA" in lines[-1] and "\r" not in r.stderr, f"piped progress is not at most one line per 10 %: {r.stderr!r}")
    r = run_moeforge(*args, "--no-progress")
    check("eval:" not in r.stderr, f"--no-progress still shows progress: {r.stderr!r}")
    sys.exit(finish("cli style", failures, start, f"{len(commands)} commands in {len(GROUPS)} groups"))


if __name__ == "__main__":
    main()
