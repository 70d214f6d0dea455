"""Parity: outputs that transformers' family cannot express load with moeforge's remote code and
compute what moeforge computes. add-shared-expert on Mixtral / Qwen3-MoE / OLMoE / GPT-OSS (fixed,
learned and sigmoid gates), grow with a selection-only bias (those families and Qwen2-MoE),
merge-deltas of a run on such a model and the pipeline's export: each output reloaded with
AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True) gives logits within 1e-4 of
`moeforge forward`, and differs from the plain family (so the remote code is what matters). The
pipeline card's loading code is the code the test runs. --no-remote-code writes the plain family and
names what transformers ignores; merge-deltas --drop-selection-bias removes the bias and reports a
measured change that matches moeforge's own forward before/after. Exit 0 = pass. Env: MOEFORGE_BIN."""
import atexit
import json
import os
import re
import shutil
import sys
import tempfile
import time

_MODULES = tempfile.mkdtemp(prefix="moeforge-hf-modules-")
atexit.register(shutil.rmtree, _MODULES, True)  # each run leaves no copy behind
os.environ["HF_MODULES_CACHE"] = _MODULES  # remote code is copied there, not into the user's cache

import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from families import build_tiny_model  # noqa: E402
from safetensors import safe_open  # noqa: E402
from surgery_common import TOLERANCE, finish, moeforge, ours, random_ids  # noqa: E402
from train_common import make_setup, write_recipe  # noqa: E402

REMOTE_FILES = ["configuration_moeforge.py", "modeling_moeforge.py"]
MOE_FAMILIES = ["mixtral", "qwen3_moe", "olmoe", "gpt_oss"]
# A selection bias that changes which experts are picked: units are probabilities (softmax routers)
# or logits (GPT-OSS).
FORCE_NEW = {"gpt_oss": "new:2"}
RECIPE = {"seed": 3, "threads": 1,
          "phases": [{"steps": 2, "batch_size": 2, "seq_len": 16, "select": ["router", "experts", "shared_expert"],
                      "optimizer": {"lr": 1e-2}}]}


def transformers_logits(model_dir, ids, remote):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                              trust_remote_code=remote).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float(), type(model).__name__


def config_of(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def check_remote(label, model_dir, ids, failures, expect_differs=True):
    """Remote code written, and it (not the plain family) reproduces moeforge's logits."""
    config = config_of(model_dir)
    missing = [f for f in REMOTE_FILES if not os.path.exists(os.path.join(model_dir, f))]
    if "auto_map" not in config or missing:
        failures.append(f"{label}: no remote code (auto_map {config.get('auto_map')}, missing {missing})")
        return None
    got = ours(model_dir, ids)
    ref, cls = transformers_logits(model_dir, ids, remote=True)
    diff = (got - ref).abs().max().item()
    if not cls.startswith("Moeforge"):
        failures.append(f"{label}: transformers built {cls}, not moeforge's class")
    if diff > TOLERANCE:
        failures.append(f"{label}: moeforge vs transformers (remote code) max diff {diff:.3g}")
    plain = None
    if expect_differs:  # the plain family ignores the extension: the test would not notice a no-op
        plain_dir = model_dir + ".plain"
        os.makedirs(plain_dir)
        for name in os.listdir(model_dir):
            if name not in REMOTE_FILES and name != "config.json":
                os.link(os.path.join(model_dir, name), os.path.join(plain_dir, name))
        with open(os.path.join(plain_dir, "config.json"), "w") as f:
            json.dump({k: v for k, v in config.items() if k != "auto_map"}, f)
        plain = (got - transformers_logits(plain_dir, ids, remote=False)[0]).abs().max().item()
        if plain < 1e-3:
            failures.append(f"{label}: the plain family gives the same logits ({plain:.3g}); the test checks nothing")
    print(f"  {label:<40} {cls:<28} moeforge vs remote code {diff:.2e}; vs plain family "
          f"{'n/a' if plain is None else f'{plain:.2e}'}")
    return diff


def shared_experts(tmp, ids, failures):
    for family in MOE_FAMILIES:
        src = os.path.join(tmp, family)
        build_tiny_model(family, src)
        for gate in ["fixed", "learned", "sigmoid"]:
            out = os.path.join(tmp, f"{family}_shared_{gate}")
            moeforge("add-shared-expert", src, "--init", "mean", "--scale", "0.5", "--gate", gate, "--out", out)
            check_remote(f"add-shared-expert {family} --gate {gate}", out, ids, failures)
    # --no-remote-code: the plain family, and a note naming what transformers ignores
    out = os.path.join(tmp, "mixtral_shared_plain")
    _, text = moeforge("add-shared-expert", os.path.join(tmp, "mixtral"), "--gate", "sigmoid", "--no-remote-code",
                       "--out", out)
    config = config_of(out)
    if "auto_map" in config or any(os.path.exists(os.path.join(out, f)) for f in REMOTE_FILES):
        failures.append("--no-remote-code still wrote remote code")
    if not re.search(r"--no-remote-code: transformers will load a plain mixtral and ignore the shared expert "
                     r"\(sigmoid gate; tensors model\.layers\.\*\.mlp\.shared_expert\.\*, mlp\.shared_expert_gate\.weight\)",
                     text):
        failures.append(f"--no-remote-code: no note of the ignored tensors in: {text.strip()}")
    # an output of an output: grow on a remote-code model keeps (regenerates) the remote code
    out2 = os.path.join(tmp, "mixtral_shared_grown")
    moeforge("grow", os.path.join(tmp, "mixtral_shared_sigmoid"), "--clone", "*:1", "--out", out2)
    check_remote("grow of add-shared-expert mixtral", out2, ids, failures)


def selection_biases(tmp, ids, failures):
    sources = {f: os.path.join(tmp, f) for f in MOE_FAMILIES}
    sources["qwen2_moe"] = os.path.join(tmp, "qwen2_moe")
    build_tiny_model("qwen2_moe", sources["qwen2_moe"])
    for family, src in sources.items():
        out = os.path.join(tmp, f"{family}_grown_bias")
        bias = FORCE_NEW.get(family, "new:0.3")
        moeforge("grow", src, "--clone", "*:0,*:2", "--router-bias", bias, "--out", out)
        if not config_of(out).get("moeforge_selection_bias"):
            failures.append(f"grow {family}: no moeforge_selection_bias key")
        check_remote(f"grow {family} --router-bias {bias}", out, ids, failures)


def merged_runs(tmp, failures):
    """merge-deltas of runs on a grown model (selection bias) and on a shared-expert model."""
    setup = os.path.join(tmp, "train")
    os.makedirs(setup)
    model, corpus = make_setup(setup, family="mixtral", config={"num_local_experts": 4})
    ids = random_ids(vocab=300)
    grown = os.path.join(setup, "grown")
    moeforge("grow", model, "--clone", "*:0", "--router-bias", "new:0.3", "--out", grown)
    shared = os.path.join(setup, "shared")
    moeforge("add-shared-expert", grown, "--gate", "learned", "--scale", "0.5", "--out", shared)
    recipe = write_recipe(os.path.join(setup, "recipe.json"), RECIPE)
    run = os.path.join(setup, "run")
    moeforge("train", shared, "--data", corpus, "--recipe", recipe, "--out", run, "--no-progress")
    merged = os.path.join(setup, "merged")
    moeforge("merge-deltas", shared, run, "--out", merged)
    check_remote("merge-deltas (shared expert + selection bias)", merged, ids, failures)
    # --drop-selection-bias: no bias left (the shared expert still needs remote code); the reported
    # change is measured with moeforge's own forward
    dropped = os.path.join(setup, "merged_dropped")
    _, text = moeforge("merge-deltas", shared, run, "--drop-selection-bias", "--out", dropped)
    config = config_of(dropped)
    if "moeforge_selection_bias" in config:
        failures.append("--drop-selection-bias kept the config key")
    with safe_open(os.path.join(dropped, "model.safetensors"), "pt") as f:
        if any(k.endswith("moeforge_selection_bias") for k in f.keys()):
            failures.append("--drop-selection-bias kept the bias tensors")
    match = re.search(r"drop-selection-bias: removed (\d+) selection-bias tensors; max \|logit difference\| "
                      r"with vs without the bias = ([0-9.eE+-]+)", text)
    measured = (ours(merged, ids) - ours(dropped, ids)).abs().max().item()
    if not match or int(match.group(1)) != 2:
        failures.append(f"--drop-selection-bias: no report of 2 removed tensors in: {text.strip()}")
    elif float(match.group(2)) <= 0 or measured <= 0:
        failures.append(f"--drop-selection-bias: reported {match.group(2)}, measured {measured:.3g}: the bias did nothing")
    else:
        print(f"  merge-deltas --drop-selection-bias: reported change {float(match.group(2)):.3g} "
              f"(moeforge forward on other tokens: {measured:.3g})")
    check_remote("merge-deltas --drop-selection-bias", dropped, ids, failures)
    return model, corpus, ids


def pipeline_export(tmp, model, corpus, ids, failures):
    """The pipeline's export of a grown model with a selection bias; its card's loading code is run."""
    job = os.path.join(tmp, "job.json")
    with open(job, "w") as f:
        json.dump({"base": model, "data": corpus, "surgery": {"grow": {"clone": "*:1", "router_bias": "new:0.3"}},
                   "eval": {"block_size": 16, "max_blocks": 2}, "report": False}, f)
    run = os.path.join(tmp, "pipeline_run")
    moeforge("pipeline", job, "--out", run, "--no-progress")
    export = os.path.join(run, "export")
    check_remote("pipeline export (grow + selection bias)", export, ids, failures)
    with open(os.path.join(export, "README.md")) as f:
        card = f.read()
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    if len(blocks) != 1 or "trust_remote_code=True" not in blocks[0]:
        failures.append(f"model card: expected one python block loading with trust_remote_code=True, got {blocks}")
        return
    code = blocks[0].replace('model_dir = "path/to/this/directory"', f"model_dir = {export!r}")
    scope = {}
    exec(code, scope)  # noqa: S102 - the card's own instructions
    with torch.no_grad():
        got = scope["model"].float().eval()(torch.tensor([ids])).logits[0]
    diff = (got - ours(export, ids)).abs().max().item()
    print(f"  pipeline model card loading code: moeforge vs transformers {diff:.2e}")
    if diff > TOLERANCE:
        failures.append(f"model card loading code: max diff {diff:.3g}")


def gpt_oss_recipe(tmp, corpus, failures):
    """The shipped GPT-OSS expert-extension recipe's first phase works from grow's exact start
    (--offset none --router-bias old:50): its probe sees traffic on the clones; the old margin of 12
    could not outbid the stored bias, and the probe says so without suggesting force_route again."""
    src = os.path.join(tmp, "gpt_oss")
    grown = os.path.join(tmp, "gpt_oss_exact")
    _, text = moeforge("grow", src, "--clone", "*:0", "--offset", "none", "--router-bias", "old:50", "--out", grown)
    diff = float(re.search(r"grow: max \|logit difference\|[^=]*= ([0-9.eE+-]+)", text).group(1))
    if diff != 0.0:
        failures.append(f"grow gpt_oss --offset none --router-bias old:50: not exact ({diff})")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "recipes", "gpt-oss-expert-extension.json")) as f:
        shipped = json.load(f)["phases"][0]
    phase = {"steps": 1, "batch_size": 2, "seq_len": 16, "select": shipped["select"], "routing": shipped["routing"],
             "optimizer": {"lr": 1e-3}}
    tok = os.path.join(tmp, "train", "tok")
    for bias, expect_ok in [(shipped["routing"]["force_route_bias"], True), (12.0, False)]:
        phase["routing"] = {**shipped["routing"], "force_route_bias": bias}
        recipe = write_recipe(os.path.join(tmp, f"gpt_oss_phase_{bias}.json"), {"seed": 1, "threads": 1, "phases": [phase]})
        code, text = moeforge("train", grown, "--tokenizer", tok, "--data", corpus, "--recipe", recipe, "--out",
                              os.path.join(tmp, f"gpt_oss_run_{bias}"), "--no-progress", expect_ok=False)
        if expect_ok and code != 0:
            failures.append(f"shipped GPT-OSS recipe phase (force_route_bias {bias}) on the exact grow: {text.strip()[-400:]}")
        if not expect_ok and (code == 0 or "probe" not in text):
            failures.append(f"force_route_bias {bias} under a stored bias of 50: expected a probe error, got rc {code}")
        print(f"  gpt-oss recipe phase 1, force_route_bias {bias:g} over grow old:50: rc {code}"
              + ("" if code == 0 else f" ({text.strip().splitlines()[-1][:160]}...)"))


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        for part in [shared_experts, selection_biases]:
            try:
                part(tmp, ids, failures)
            except Exception as error:  # noqa: BLE001
                failures.append(f"{part.__name__}: {error}")
        try:
            model, corpus, train_ids = merged_runs(tmp, failures)
            pipeline_export(tmp, model, corpus, train_ids, failures)
            gpt_oss_recipe(tmp, corpus, failures)
        except Exception as error:  # noqa: BLE001
            failures.append(f"merge-deltas / pipeline: {error}")
    return finish("remote-code outputs parity", failures, start,
                  "shared experts, selection biases, merge-deltas and pipeline export match moeforge")


if __name__ == "__main__":
    sys.exit(main())
