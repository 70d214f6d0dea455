"""Parity: GPT-Neo MoE, moeforge's own family (GPT-Neo with GELU experts that keep c_fc/c_proj
biases). A tiny transformers GPTNeoForCausalLM is upcycled (`--to gpt_neo_moe`, all layers and
`--layers 1`), two are merged, the result grown, given a shared expert (every gate), and trained
and merged back; `moeforge init --family gpt_neo_moe` is trained too. Every output reloads with
AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True) as moeforge's class and gives
logits within 1e-4 of `moeforge forward`. A copy-upcycle keeps the dense function (checked against
transformers' GPTNeo); other --to targets fail with one line naming gpt_neo_moe; stats, eval and
generate --force-expert run on it. Exit 0 = pass. Env: MOEFORGE_BIN."""
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
from surgery_common import EXACT, TOLERANCE, finish, moeforge, ours, random_ids  # noqa: E402
from train_common import make_setup, write_recipe  # noqa: E402

REMOTE_FILES = ["configuration_moeforge.py", "modeling_moeforge.py"]
RECIPE = {"seed": 3, "threads": 1,
          "phases": [{"steps": 2, "batch_size": 2, "seq_len": 16, "select": ["router", "experts", "shared_expert"],
                      "optimizer": {"lr": 1e-2}}]}


def transformers_logits(model_dir, ids, remote=True):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                              trust_remote_code=remote).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float(), model


def config_of(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


def check(label, model_dir, ids, failures, moe_layers=None):
    """Remote code written; transformers builds moeforge's class with MoE blocks where the config
    says, and it reproduces moeforge's logits."""
    config = config_of(model_dir)
    missing = [f for f in REMOTE_FILES if not os.path.exists(os.path.join(model_dir, f))]
    if config.get("model_type") != "gpt_neo_moe" or "auto_map" not in config or missing:
        failures.append(f"{label}: model_type {config.get('model_type')}, auto_map {config.get('auto_map')}, "
                        f"missing {missing}")
        return None
    got = ours(model_dir, ids)
    ref, model = transformers_logits(model_dir, ids)
    diff = (got - ref).abs().max().item()
    cls = type(model).__name__
    if cls != "MoeforgeGptNeoMoeForCausalLM":
        failures.append(f"{label}: transformers built {cls}")
    sparse = [l for l, block in enumerate(model.transformer.h) if hasattr(block.mlp, "experts")]
    if moe_layers is not None and sparse != moe_layers:
        failures.append(f"{label}: transformers' MoE layers {sparse}, expected {moe_layers}")
    if diff > TOLERANCE:
        failures.append(f"{label}: moeforge vs transformers (remote code) max diff {diff:.3g}")
    print(f"  {label:<44} MoE layers {sparse}; moeforge vs transformers {diff:.2e}")
    return got


def upcycles(tmp, ids, failures):
    dense = os.path.join(tmp, "gpt_neo")
    build_tiny_model("gpt_neo", dense)
    dense_logits, _ = transformers_logits(dense, ids, remote=False)
    copy = os.path.join(tmp, "copy")
    moeforge("upcycle", dense, "--to", "gpt_neo_moe", "--experts", "4", "--top-k", "2", "--out", copy)
    got = check("upcycle --method copy", copy, ids, failures, moe_layers=[0, 1, 2])
    if got is not None:  # identical experts with renormalised weights: the dense function
        same = (got - dense_logits).abs().max().item()
        print(f"  {'copy-upcycle vs transformers GPTNeo':<44} {same:.2e}")
        if same > EXACT * 10:
            failures.append(f"copy-upcycle changed the function: {same:.3g} from transformers' GPTNeo")
    noisy = os.path.join(tmp, "noisy")
    moeforge("upcycle", dense, "--to", "gpt_neo_moe", "--experts", "4", "--top-k", "2", "--method", "noise",
             "--noise-std", "0.3", "--router", "random", "--layers", "1", "--out", noisy)
    check("upcycle --method noise --layers 1", noisy, ids, failures, moe_layers=[1])
    granular = os.path.join(tmp, "granular")
    moeforge("upcycle", dense, "--to", "gpt_neo_moe", "--experts", "4", "--top-k", "2", "--method", "granular",
             "--granularity", "2", "--router", "random", "--out", granular)
    check("upcycle --method granular", granular, ids, failures)
    # the one target: any other fails in one line, naming it, and writes nothing
    bad = os.path.join(tmp, "bad")
    code, text = moeforge("upcycle", dense, "--to", "mixtral", "--experts", "4", "--top-k", "2", "--out", bad,
                          expect_ok=False)
    if code == 0 or "gpt_neo_moe" not in text or len(text.strip().splitlines()) != 1 or os.path.exists(bad):
        failures.append(f"upcycle gpt_neo --to mixtral: expected a one-line error naming gpt_neo_moe, got rc {code}: {text}")
    # --no-remote-code: a note that transformers cannot load it at all
    plain = os.path.join(tmp, "plain")
    _, text = moeforge("upcycle", dense, "--to", "gpt_neo_moe", "--experts", "4", "--top-k", "2", "--no-remote-code",
                       "--out", plain)
    if "auto_map" in config_of(plain) or "transformers cannot load a gpt_neo_moe" not in text:
        failures.append(f"--no-remote-code: auto_map {config_of(plain).get('auto_map')}, note: {text.strip()}")
    return dense, noisy


def merges_and_growth(tmp, dense, noisy, ids, failures):
    other = os.path.join(tmp, "gpt_neo_b")
    build_tiny_model("gpt_neo", other, seed=5)
    merged = os.path.join(tmp, "merged")
    _, text = moeforge("merge", "--base", dense, "--expert", f"a={dense}", "--expert", f"b={other}", "--top-k", "1",
                       "--router", "random", "--out", merged)  # no --to: a gpt_neo base's only target
    if "into gpt_neo_moe" not in text:
        failures.append(f"merge of gpt_neo without --to: {text.strip()}")
    check("merge of two GPT-Neo (top-1)", merged, ids, failures)
    grown = os.path.join(tmp, "grown")
    moeforge("grow", noisy, "--clone", "*:1", "--router-bias", "new:0.3", "--out", grown)
    if config_of(grown).get("num_experts") != 5 or not config_of(grown).get("moeforge_selection_bias"):
        failures.append(f"grow: config {config_of(grown)}")
    check("grow --clone *:1 --router-bias new:0.3", grown, ids, failures, moe_layers=[1])
    for gate in ["fixed", "learned", "sigmoid"]:
        out = os.path.join(tmp, f"shared_{gate}")
        moeforge("add-shared-expert", noisy, "--init", "mean", "--scale", "0.5", "--gate", gate, "--out", out)
        check(f"add-shared-expert --gate {gate}", out, ids, failures, moe_layers=[1])
    return grown


def training(tmp, failures):
    setup = os.path.join(tmp, "train")
    os.makedirs(setup)
    model, corpus = make_setup(setup, family="gpt_neo_moe",
                               config={"num_heads": 4, "intermediate_size": 48, "moe_intermediate_size": 32})
    ids = random_ids(vocab=300)
    check("init --family gpt_neo_moe", model, ids, failures, moe_layers=[0, 1])
    shared = os.path.join(setup, "shared")
    moeforge("add-shared-expert", model, "--gate", "sigmoid", "--out", shared)
    recipe = write_recipe(os.path.join(setup, "recipe.json"), RECIPE)
    run = os.path.join(setup, "run")
    moeforge("train", shared, "--data", corpus, "--recipe", recipe, "--out", run, "--no-progress")
    merged = os.path.join(setup, "merged")
    moeforge("merge-deltas", shared, run, "--out", merged)
    before, after = ours(shared, ids), check("train + merge-deltas", merged, ids, failures)
    if after is not None and (before - after).abs().max().item() < 1e-4:
        failures.append("train + merge-deltas: the merged model computes what the base did")
    # router statistics, evaluation and forced-expert generation run on the family
    stats = os.path.join(setup, "stats")
    moeforge("stats", merged, "--data", corpus, "--tokens", 256, "--out", stats)
    with open(os.path.join(stats, "stats.json")) as f:
        report = json.load(f)
    tokens, top_k = report["data"]["tokens"], config_of(merged)["num_experts_per_tok"]
    layers = {L["layer"]: sum(L["counts"]) for L in report["layers"]}
    if sorted(layers) != [0, 1] or any(n != tokens * top_k for n in layers.values()):
        failures.append(f"stats: expert counts per layer {layers}, expected {tokens} tokens x top-{top_k} on layers 0, 1")
    _, text = moeforge("eval", merged, "--data", corpus, "--block-size", 16, "--max-blocks", 2)
    match = re.search(r"perplexity\D*([0-9.]+)", text)
    if not match or not float(match.group(1)) > 1:
        failures.append(f"eval: no perplexity in {text.strip()[:300]}")
    _, text = moeforge("generate", merged, "--prompt", "the", "--max-new", 4, "--force-expert", "0:1")
    if not text.strip():
        failures.append("generate --force-expert printed nothing")
    print("  stats / eval / generate --force-expert on the trained model ran")


def main():
    start = time.time()
    failures = []
    ids = random_ids()
    with tempfile.TemporaryDirectory() as tmp:
        for part in [lambda: merges_and_growth(tmp, *upcycles(tmp, ids, failures), ids, failures),
                     lambda: training(tmp, failures)]:
            try:
                part()
            except Exception as error:  # noqa: BLE001
                failures.append(f"{error}")
    return finish("gpt_neo_moe parity", failures, start,
                  "upcycle, merge, grow, shared expert, train and init outputs match transformers' remote code")


if __name__ == "__main__":
    sys.exit(main())
