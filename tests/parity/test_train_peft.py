"""A LoRA run on a dense Llama exports a PEFT adapter that `peft` loads onto the transformers model
with the same logits as the merged checkpoint from `moeforge merge-deltas`."""
import json
import os
import tempfile

import torch
import transformers
from peft import PeftModel

from train_common import fail, make_setup, moeforge, write_recipe

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()

RECIPE = {
    "seed": 3, "threads": 1,
    "phases": [{"steps": 4, "batch_size": 2, "seq_len": 16, "select": ["attention", "mlp", "lm_head"], "method": "lora",
                "lora": {"rank": 4, "alpha": 8}, "optimizer": {"lr": 2e-2}}],
}


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, corpus = make_setup(tmp, family="llama")
        run = os.path.join(tmp, "run")
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        moeforge("train", model_dir, "--data", corpus, "--recipe", write_recipe(os.path.join(tmp, "r.json"), RECIPE),
                 "--out", run, "--no-progress", env=env)
        merged = os.path.join(tmp, "merged")
        moeforge("merge-deltas", model_dir, run, "--out", merged)
        with open(os.path.join(run, "adapter_config.json")) as f:
            config = json.load(f)
        if len(config["target_modules"]) != 2 * 4 + 2 * 3 + 1:  # q,k,v,o + gate,up,down per layer + lm_head
            failures.append(f"unexpected target_modules: {config['target_modules']}")
        ids = [5, 17, 42, 99, 3, 250, 7, 64, 12, 1]
        base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        before = logits(base, ids)
        adapted = PeftModel.from_pretrained(base, run).eval()
        got = logits(adapted, ids)
        want = logits(transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval(), ids)
        diff = (got - want).abs().max().item()
        moved = (want - before).abs().max().item()
        print(f"peft vs merged: max |diff| = {diff:.3g}; training moved logits by {moved:.3g}")
        if diff > 1e-4:
            failures.append(f"PEFT-adapted logits differ from the merged checkpoint by {diff}")
        if moved < 1e-3:
            failures.append("the adapter does not change the model (B stayed zero?)")
    fail(failures)


if __name__ == "__main__":
    main()
