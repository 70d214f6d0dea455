"""`moeforge eval MODEL --baseline TEACHER` (issue 15) against an independent reference built on
transformers: a tiny Mixtral made with transformers' own classes (families.py) and, as the baseline,
a noisy copy of it whose vocabulary is padded by 8 rows past the 300-token tokenizer, fp32.

The blocks are the ones `moeforge data inspect --dump` lists for the same spec, block size and seed
(eval --split all = every block, validation fraction 0). Per block the reference runs both models
(eager) and computes, over targets t (t >= 1 with mask[t] = 1; n of them) and real tokens:
  loss / baseline loss = mean -log softmax(logits)[ids[t]] (each over its own full vocabulary)
  mean KL             = mean KL(softmax(base[:300]) || softmax(model[:300])) (the padded tail left out)
  top-1 agreement     = mean [argmax base[:300] == argmax model[:300]]
  router drift, per MoE layer = sum_e |mean_tokens softmax(model router)_e - mean_tokens softmax(base router)_e|
and checks each against `eval --json` (rel 1e-4; agreement exactly). It also checks that a baseline
whose vocabulary is smaller than the tokenizer is refused before loading, exit 1, naming both sizes;
and that eval against itself gives KL 0, agreement 1 and drift 0.
Failure proof run by hand: normalising the reference's baseline over all 308 rows before dropping
the padded ones fails the mean KL (rel 9.8 on two random models).
Env: MOEFORGE_BIN. Exit 0 = pass.
"""
import json
import os
import random
import sys
import tempfile

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families  # noqa: E402
from moeforge_cli import moeforge  # noqa: E402
from train_common import WORDS  # noqa: E402

torch.set_num_threads(2)
VOCAB = 300
BLOCK = 24
failures = []


def check(label, got, want, tol):
    r = abs(got - want) / max(abs(want), 1e-12)
    if r > tol:
        failures.append(f"{label}: moeforge {got:.8g} vs reference {want:.8g} (rel {r:.2e})")


def router_probs(model, ids):
    """Per MoE layer, softmax of the router logits [tokens, E] (Mixtral's router: softmax over all experts)."""
    out = model(input_ids=ids, output_router_logits=True)
    return out.logits[0], [torch.softmax(r.reshape(-1, r.shape[-1]), -1) for r in out.router_logits]


def reference(model_dir, base_dir, blocks):
    load = dict(dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **load).eval()
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir, **load).eval()
    loss = base_loss = kl = agree = 0.0
    n = real = 0
    sums_m, sums_b = None, None
    with torch.no_grad():
        for b in blocks:
            ids = torch.tensor([b["ids"]])
            mask = torch.tensor(b["mask"], dtype=torch.bool)
            lm, pm = router_probs(model, ids)
            lb, pb = router_probs(base, ids)
            targets = ids[0, 1:]
            w = mask[1:]
            lq, lp = torch.log_softmax(lm[:-1], -1), torch.log_softmax(lb[:-1], -1)
            loss -= lq.gather(-1, targets[:, None])[:, 0][w].sum().item()
            base_loss -= lp.gather(-1, targets[:, None])[:, 0][w].sum().item()
            q, p = torch.log_softmax(lm[:-1, :VOCAB], -1), torch.log_softmax(lb[:-1, :VOCAB], -1)
            kl += (p.exp() * (p - q)).sum(-1)[w].sum().item()
            agree += (p.argmax(-1) == q.argmax(-1))[w].sum().item()
            n += int(w.sum())
            real += ids.shape[1]
            sm, sb = [x.sum(0) for x in pm], [x.sum(0) for x in pb]
            sums_m = sm if sums_m is None else [a + c for a, c in zip(sums_m, sm)]
            sums_b = sb if sums_b is None else [a + c for a, c in zip(sums_b, sb)]
    drift = [(a / real - c / real).abs().sum().item() for a, c in zip(sums_m, sums_b)]
    return {"loss": loss / n, "baseline_loss": base_loss / n, "kl": kl / n, "agreement": agree / n, "drift": drift, "tokens": n}


def perturbed_copy(src, dst):
    """The model with noise on every weight (so the argmaxes mostly agree) and 8 padded vocabulary rows."""
    torch.manual_seed(5)
    m = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    m.resize_token_embeddings(VOCAB + 8, mean_resizing=False)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3 * p.std())
    m.save_pretrained(dst)


def main():
    with tempfile.TemporaryDirectory() as root:
        rng = random.Random(11)
        corpus = os.path.join(root, "corpus.txt")
        with open(corpus, "w") as f:
            for _ in range(12):
                f.write(" ".join(rng.choice(WORDS) for _ in range(30)) + "\n\n")
        tok = os.path.join(root, "tok")
        moeforge("tokenizer", "train", "--data", corpus, "--vocab", VOCAB, "--out", tok)
        model_dir, base_dir, small_dir = (os.path.join(root, x) for x in ("model", "base", "small"))
        families.build_tiny_model("mixtral", model_dir, seed=0)
        perturbed_copy(model_dir, base_dir)
        families.build_tiny_model("mixtral", small_dir, seed=1, vocab_size=VOCAB - 4)
        dump = os.path.join(root, "blocks.jsonl")
        moeforge("data", "inspect", "--data", corpus, "--tokenizer", tok, "--block-size", BLOCK, "--validation-fraction", 0,
                 "--seed", 0, "--dump", dump)
        with open(dump) as f:
            blocks = [b for b in map(json.loads, f) if b["split"] == "train"]
        common = ["--data", corpus, "--tokenizer", tok, "--block-size", BLOCK, "--seed", 0, "--batch-size", 3, "--json"]
        rc, out = moeforge("eval", model_dir, "--baseline", base_dir, *common)
        got = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]  # stderr (progress) follows
        ref = reference(model_dir, base_dir, blocks)
        if got["tokens"] != ref["tokens"]:
            failures.append(f"tokens scored: moeforge {got['tokens']} vs reference {ref['tokens']}")
        check("loss", got["loss"], ref["loss"], 1e-4)
        check("baseline loss", got["baseline"]["loss"], ref["baseline_loss"], 1e-4)
        check("mean KL", got["baseline"]["mean_kl"], ref["kl"], 1e-4)
        check("top-1 agreement", got["baseline"]["top1_agreement"], ref["agreement"], 1e-9)
        drift = got["baseline"]["router_drift"]
        if [d["layer"] for d in drift] != list(range(len(ref["drift"]))):
            failures.append(f"router drift layers {[d['layer'] for d in drift]}, want {len(ref['drift'])} MoE layers")
        for d, r in zip(drift, ref["drift"]):
            check(f"router drift layer {d['layer']}", d["l1"], r, 1e-4)
        print(f"eval vs baseline: loss {got['loss']:.5f} (ref {ref['loss']:.5f}), KL {got['baseline']['mean_kl']:.5f} "
              f"(ref {ref['kl']:.5f}), agreement {got['baseline']['top1_agreement']:.4f}, drift "
              f"{[round(d['l1'], 4) for d in drift]} (ref {[round(x, 4) for x in ref['drift']]})")

        rc, out = moeforge("eval", model_dir, "--baseline", model_dir, *common)
        same = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]["baseline"]
        if abs(same["mean_kl"]) > 1e-6 or same["top1_agreement"] != 1.0 or any(d["l1"] > 1e-6 for d in same["router_drift"]):
            failures.append(f"eval against itself: {same}")

        rc, out = moeforge("eval", model_dir, "--baseline", small_dir, *common, expect_ok=False)
        lines = [x for x in out.strip().splitlines() if x]
        if rc != 1 or len(lines) != 1 or "vocabulary 296" not in out or "300" not in out or "padding" not in out:
            failures.append(f"a baseline vocabulary below the tokenizer's: exit {rc}, output {out.strip()!r}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
