"""Outputs that never surprise: (1) a temporary output left by a killed run (".OUT.tmp-PID-N", its process
gone) is removed by the next run into OUT, which says how much it freed, while one whose process is alive
is kept; (2) an output location that cannot be written (its parent is a file) gives one line
"moeforge: error: ..." naming the path and exit 1 for every command, never "internal error" (exit 2),
and leaves nothing behind; (3) a surgery output's README.md is its own model card (the base's kept as
BASE_MODEL_CARD.md) and licence files without an extension travel with it. Exit 0 = pass. Env: MOEFORGE_BIN."""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from moeforge_cli import run_moeforge  # noqa: E402
from small_tokenizer import TEXT, save_small_tokenizer  # noqa: E402

failures = []


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def fake_temp(parent, name, pid, size):
    path = os.path.join(parent, f".{name}.tmp-{pid}-1")
    os.makedirs(path)
    with open(os.path.join(path, "model-00001-of-00002.safetensors"), "wb") as f:
        f.write(os.urandom(size))
    return path


def check_stale_temps(tmp, model_dir):
    stale = fake_temp(tmp, "moe", dead_pid(), 3 << 20)
    alive = fake_temp(tmp, "moe", os.getpid(), 1024)  # this process: still writing, as far as anyone knows
    result = run_moeforge("upcycle", model_dir, "--experts", "4", "--top-k", "2", "--to", "mixtral", "--out",
                          os.path.join(tmp, "moe"), check=False)
    if result.returncode != 0:
        failures.append(f"upcycle beside a stale temporary: exit {result.returncode}: {result.stderr.strip()}")
        return
    if os.path.exists(stale):
        failures.append(f"{stale} (process gone) was not removed")
    if not os.path.exists(alive):
        failures.append(f"{alive} (process alive) was removed")
    if "removed 1 temporary output left by an interrupted run" not in result.stderr or "freeing 3." not in result.stderr:
        failures.append(f"no note of what was freed: {result.stderr.strip()}")
    print(f"  stale temporary removed, live one kept: {[l for l in result.stderr.splitlines() if 'removed' in l]}")


def check_unwritable(tmp, model_dir, data):
    blocker = os.path.join(tmp, "a_file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    out = os.path.join(blocker, "out")
    commands = {
        "upcycle": ["upcycle", model_dir, "--experts", "4", "--top-k", "2", "--to", "mixtral", "--out", out],
        "select-data": ["select-data", "--data", data, "--tokenizer", model_dir, "--budget", "50", "--out",
                        out + ".jsonl"],
        "forward": ["forward", model_dir, "--ids", "1,2,3", "--out", out + ".safetensors"],
        "init": ["init", "--family", "llama", "--out", out],
    }
    for name, args in commands.items():
        result = run_moeforge(*args, check=False)
        lines = result.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        ok = result.returncode == 1 and last.startswith("moeforge: error: ") and "a_file" in last
        print(f"  {name:<12} exit {result.returncode}: {last}")
        if not ok:
            failures.append(f"{name} into an unwritable location: exit {result.returncode}, last line '{last}'")
    leftovers = [e for e in os.listdir(tmp) if e.startswith(".") and "a_file" in e]
    if leftovers:
        failures.append(f"left behind: {leftovers}")


def check_cards_and_licences(tmp, model_dir):
    base = os.path.join(tmp, "carded")
    subprocess.run(["cp", "-r", model_dir, base], check=True)
    files = {"README.md": "---\nlicense: llama3.2\nlanguage: en\n---\n# Base model\n\nTHE BASE CARD TEXT\n", "LICENSE": "LLAMA LICENCE TERMS\n",
             "USE_POLICY.md": "acceptable use\n", "NOTICE": "notice text\n"}
    for name, text in files.items():
        with open(os.path.join(base, name), "w") as f:
            f.write(text)
    out = os.path.join(tmp, "carded_moe")
    r = run_moeforge("upcycle", base, "--experts", 4, "--top-k", 2, "--to", "mixtral", "--out", out, check=False)
    if r.returncode != 0:
        failures.append(f"upcycle with a card: exit {r.returncode}: {r.stderr[-300:]}")
        return
    card = open(os.path.join(out, "README.md")).read()
    if "THE BASE CARD TEXT" in card or "moeforge upcycle" not in card or 'license: "llama3.2"' not in card:
        failures.append(f"README.md of the upcycled model is not its own card with the base's licence:\n{card[:400]}")
    if tmp in card or "base_model:" in card:  # a local base has no repo id; no absolute paths either way
        failures.append(f"the card of a local base names a path or a base_model:\n{card[:400]}")
    # A base in the local Hugging Face cache, given by its id: the card names it as the Hub does.
    hub = os.path.join(tmp, "hf_home", "hub", "models--acme--tiny-llama")
    os.makedirs(os.path.join(hub, "refs"))
    os.makedirs(os.path.join(hub, "snapshots"))
    subprocess.run(["cp", "-r", base, os.path.join(hub, "snapshots", "0123abc")], check=True)
    with open(os.path.join(hub, "refs", "main"), "w") as f:
        f.write("0123abc")
    env = dict(os.environ, HF_HOME=os.path.join(tmp, "hf_home"))
    env.pop("HF_HUB_CACHE", None)
    hub_out = os.path.join(tmp, "from_hub_id")
    r = run_moeforge("upcycle", "acme/tiny-llama", "--experts", 4, "--top-k", 2, "--to", "mixtral", "--out", hub_out, check=False,
                     env=env)
    hub_card = open(os.path.join(hub_out, "README.md")).read() if r.returncode == 0 else ""
    if r.returncode != 0 or 'base_model: "acme/tiny-llama"' not in hub_card or "base_model_relation: finetune" not in hub_card \
            or tmp in hub_card:
        failures.append(f"upcycle of a cached hub id: exit {r.returncode} {r.stderr[-300:]}\n{hub_card[:400]}")
    named_out = os.path.join(tmp, "named_base")
    r = run_moeforge("upcycle", base, "--experts", 4, "--top-k", 2, "--to", "mixtral", "--base-model-id", "meta-llama/Llama-3.2-1B",
                     "--out", named_out, check=False)
    named = open(os.path.join(named_out, "README.md")).read() if r.returncode == 0 else ""
    if 'base_model: "meta-llama/Llama-3.2-1B"' not in named:
        failures.append(f"--base-model-id not in the card: exit {r.returncode} {r.stderr[-200:]}\n{named[:300]}")
    r = run_moeforge("upcycle", base, "--experts", 4, "--top-k", 2, "--to", "mixtral", "--base-model-id", "just-a-name",
                     "--out", os.path.join(tmp, "bad_id"), check=False)
    if r.returncode != 1 or "--base-model-id 'just-a-name' is not a Hub repo id" not in r.stderr:
        failures.append(f"a bad --base-model-id: exit {r.returncode}: {r.stderr.strip()}")
    r = run_moeforge("upcycle", "acme/missing-model", "--experts", 4, "--top-k", 2, "--to", "mixtral", "--out",
                     os.path.join(tmp, "nowhere"), check=False, env=env)
    if r.returncode != 1 or "Hugging Face cache" not in r.stderr or "hf download acme/missing-model" not in r.stderr:
        failures.append(f"an id not in the cache: exit {r.returncode}: {r.stderr.strip()}")
    if not os.path.exists(os.path.join(out, "BASE_MODEL_CARD.md")) or \
            "THE BASE CARD TEXT" not in open(os.path.join(out, "BASE_MODEL_CARD.md")).read():
        failures.append("the base's card was not kept as BASE_MODEL_CARD.md")
    for name in ("LICENSE", "USE_POLICY.md", "NOTICE"):
        if not os.path.exists(os.path.join(out, name)) or open(os.path.join(out, name)).read() != files[name]:
            failures.append(f"{name} was not carried into the output")
    # A second surgery keeps the original base card, not the first output's generated one.
    grown = os.path.join(tmp, "carded_grown")
    r = run_moeforge("grow", out, "--clone", "*:0", "--out", grown, check=False)
    if r.returncode != 0:
        failures.append(f"grow of the upcycled model: exit {r.returncode}: {r.stderr[-300:]}")
        return
    if "moeforge grow" not in open(os.path.join(grown, "README.md")).read():
        failures.append("grow output README.md is not its own card")
    if "THE BASE CARD TEXT" not in open(os.path.join(grown, "BASE_MODEL_CARD.md")).read():
        failures.append("grow output lost the original base card")


def main():
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "dense")
        build_tiny_model("llama", model_dir)
        save_small_tokenizer(model_dir)
        data = os.path.join(tmp, "data.txt")
        with open(data, "w") as f:
            f.write("\n\n".join([TEXT] * 8) + "\n")
        check_stale_temps(tmp, model_dir)
        check_unwritable(tmp, model_dir, data)
        check_cards_and_licences(tmp, model_dir)
    for failure in failures:
        print("FAIL:", failure)
    print(f"output_hygiene: {'FAIL' if failures else 'ok'} ({time.time() - start:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
