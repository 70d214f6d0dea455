"""Helpers shared by the surgery parity scripts: run moeforge, run both runtimes on a model
directory, checksum a directory tree (input untouched), and collect failures."""
import hashlib
import os
import re
import sys

import torch
import transformers
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import finish, moeforge  # noqa: E402,F401 (re-exported to the surgery scripts)

TOLERANCE = 1e-4       # our runtime vs transformers on the same output
EXACT = 1e-5           # surgery that must not change the function
torch.set_num_threads(2)
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


def reported_diff(text):
    """The number after 'max |logit difference| ... = ' in a surgery command's output."""
    match = re.search(r"max \|logit difference\|[^=]*= ([0-9.eE+-]+|nan|inf)", text)
    if not match:
        raise RuntimeError(f"no logit difference reported in: {text.strip()}")
    return float(match.group(1))


def ours(model_dir, ids):
    out = os.path.join(model_dir, "..", os.path.basename(model_dir.rstrip("/")) + ".forward.safetensors")
    moeforge("forward", model_dir, "--ids", ",".join(map(str, ids)), "--out", out)
    logits = load_file(out)["logits"]
    os.remove(out)
    return logits


def theirs(model_dir, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def parity(label, model_dir, ids, failures, native=True):
    """Our runtime loads and runs the output; where the family is native, transformers agrees."""
    got = ours(model_dir, ids)
    if not torch.isfinite(got).all():
        failures.append(f"{label}: non-finite logits")
    if not native:
        return got, None
    ref = theirs(model_dir, ids)
    diff = (got - ref).abs().max().item()
    if diff > TOLERANCE:
        failures.append(f"{label}: moeforge vs transformers max diff {diff:.3g}")
    return got, diff


def tree_checksum(path):
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def random_ids(n=24, vocab=300, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n,), generator=generator).tolist()
