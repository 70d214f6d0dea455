"""LoRA runs export PEFT adapters that `peft` loads onto the transformers model with the logits of
the merged checkpoint from `moeforge merge-deltas`: a dense Llama (target_modules), and MoE families
whose routers and stacked experts are adapted through PEFT's target_parameters. Mixtral stores its
experts per expert on disk (transformers fuses them into mlp.experts.gate_up_proj on load), GPT-OSS
stores them fused, interleaved and transposed, Qwen2-MoE adds a shared expert; only some experts of
a layer are trained, so the others must get a zero delta. (Biases are no LoRA targets: a LoRA phase
trains them in full, outside the adapter, and says so; the cases leave them out.)"""
import json
import os
import tempfile

import torch
import transformers
from peft import PeftModel

from train_common import fail, make_setup, moeforge, write_recipe

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()


def recipe(select, router=False):
    lora = {"rank": 4, "alpha": 8}
    if router:
        lora["router"] = True
    return {"seed": 3, "threads": 1,
            "phases": [{"steps": 4, "batch_size": 2, "seq_len": 16, "select": select, "method": "lora",
                        "lora": lora, "optimizer": {"lr": 2e-2}}]}


CASES = [
    # family, init config, selection, router LoRA, expected target_modules, expected target_parameters
    ("llama", {}, ["attention", "mlp", "lm_head"], False, 2 * 4 + 2 * 3 + 1, []),
    ("mixtral", {"num_local_experts": 4}, "experts=0:1,1:0,1:2 + router + attention", True, 2 * 4,
     [f"model.layers.{l}.mlp.{p}" for l in (0, 1) for p in ("gate.weight", "experts.gate_up_proj", "experts.down_proj")]),
    ("gpt_oss", {"num_local_experts": 4, "head_dim": 8}, "experts=1:0,1:3 + router - layers.*.router_bias - layers.*.experts.b_*", True, 0,
     [f"model.layers.{l}.mlp.router.weight" for l in (0, 1)] +
     [f"model.layers.1.mlp.experts.{p}" for p in ("gate_up_proj", "down_proj")]),
    ("qwen2_moe", {"num_experts": 4, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 24},
     "experts=*:2 + shared_expert - layers.*.shared_gate", False, 2 * 3,
     [f"model.layers.{l}.mlp.experts.{p}" for l in (0, 1) for p in ("gate_up_proj", "down_proj")]),
]


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def check(tmp, family, config, select, router, n_modules, parameters):
    failures = []
    model_dir, corpus = make_setup(tmp, family=family, config=config)
    run = os.path.join(tmp, "run")
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
    result = moeforge("train", model_dir, "--data", corpus, "--recipe",
                      write_recipe(os.path.join(tmp, "r.json"), recipe(select, router)), "--out", run, "--no-progress",
                      env=env)
    for note in ("not expressible as a PEFT adapter", "are not in the PEFT adapter"):
        if note in result.stderr:
            failures.append(f"{family}: part of the training was left out of the adapter: {result.stderr.strip()}")
    merged = os.path.join(tmp, "merged")
    moeforge("merge-deltas", model_dir, run, "--out", merged)
    with open(os.path.join(run, "adapter_config.json")) as f:
        adapter = json.load(f)
    if len(adapter["target_modules"]) != n_modules:
        failures.append(f"{family}: {len(adapter['target_modules'])} target_modules, want {n_modules}: "
                        f"{adapter['target_modules']}")
    if sorted(adapter.get("target_parameters", [])) != sorted(parameters):
        failures.append(f"{family}: target_parameters {adapter.get('target_parameters')}, want {parameters}")
    ids = [5, 17, 42, 99, 3, 250, 7, 64, 12, 1]
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    before = logits(base, ids)
    adapted = PeftModel.from_pretrained(base, run).eval()
    got = logits(adapted, ids)
    want = logits(transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval(), ids)
    diff = (got - want).abs().max().item()
    moved = (want - before).abs().max().item()
    print(f"{family}: peft vs merged: max |diff| = {diff:.3g}; training moved logits by {moved:.3g}")
    if diff > 1e-4 * max(1.0, want.abs().max().item()):
        failures.append(f"{family}: PEFT-adapted logits differ from the merged checkpoint by {diff}")
    if moved < 1e-3:
        failures.append(f"{family}: the adapter does not change the model (B stayed zero?)")
    return failures


def main():
    failures = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            failures += check(tmp, *case)
    fail(failures)


if __name__ == "__main__":
    main()
