"""Distillation (issue 15): teacher-cache size and write speed on a 201,088-token vocabulary (GPT-OSS's),
the cache's fidelity, and the step time of training from the cache and from an online teacher.

Setup: a 300-token BPE tokenizer trained on a small corpus, widened to 201,088 ids (extra tokens the
text never produces, so the teacher's top-K ids span all 18 bits); a 2-layer Mixtral teacher and
student of that vocabulary (hidden 64, 32 experts top-4, like GPT-OSS's router), the teacher's
lm_head scaled so its next-token entropy is a few nats (a random head is nearly uniform, where no
top-K cache can be faithful).
  - cache: `moeforge teacher-cache --top-k 64 --router-top-k 4`: bytes per token (token part, router
    part), write tokens/s. Target: <= 160 B/token for the token part.
  - fidelity, against the full teacher distribution P (transformers, fp32) on the cached blocks:
    codec KL = KL(bucket(P) || cached) over the K ids + tail (what the loss sees; bf16 rounding only)
    and the truncation KL of spreading the tail mass over the other ids in P's own proportions
    (= codec KL: nothing is lost that the loss uses) vs uniformly (what a cache without the tail
    would imply). Target: mean KL <= 1e-3 nats.
  - training, same student, steps after warm-up (metrics.jsonl tokens_per_s): plain CE; KD from
    the cache; KD from the online teacher. Ratios: cache step / CE step (target <= 1.15) and online
    step / (CE step + teacher forward), the teacher forward timed by transformers-free means: the
    cache writer's tokens/s (an upper bound on the forward's time: it also sorts and encodes).

  .venv/bin/python bench/distill_bench.py [--moeforge build/moeforge] [--steps 8] [--threads 2]
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import torch
import transformers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from train_common import WORDS, moeforge, write_recipe  # noqa: E402

transformers.logging.set_verbosity_error()
VOCAB = 201088
SEQ = 64


def widen_tokenizer(src, dst, vocab):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name != "tokenizer.json":
            with open(os.path.join(src, name), "rb") as a, open(os.path.join(dst, name), "wb") as b:
                b.write(a.read())
    tok = json.load(open(os.path.join(src, "tokenizer.json")))
    v = tok["model"]["vocab"]
    used = len(v) + len(tok.get("added_tokens", []))
    for i in range(vocab - used):
        v[f"zz{i}"] = len(v) + len(tok.get("added_tokens", []))
    # added tokens keep their ids after the model vocabulary
    for j, t in enumerate(tok.get("added_tokens", [])):
        t["id"] = len(v) + j
    json.dump(tok, open(os.path.join(dst, "tokenizer.json"), "w"))


def build_model(path, seed, head_scale, tok):
    cfg = transformers.MixtralConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, num_local_experts=32,
                                     num_experts_per_tok=4, max_position_embeddings=256, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = transformers.MixtralForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    model.save_pretrained(path)
    for name in os.listdir(tok):
        with open(os.path.join(tok, name), "rb") as a, open(os.path.join(path, name), "wb") as b:
            b.write(a.read())


def recipe(args, distill=None):
    phase = {"steps": args.steps + 2, "batch_size": 4, "seq_len": SEQ, "select": "experts + router",
             "optimizer": {"lr": 1e-4}}
    if distill is not None:
        phase["losses"] = {"distill": distill}
    return {"seed": 0, "threads": args.threads, "probe": "off", "phases": [phase]}


def train_tokens_per_s(tmp, label, student, corpus, args, distill=None, extra=()):
    run = os.path.join(tmp, "run_" + label)
    moeforge("train", student, "--data", corpus, "--recipe", write_recipe(run + ".json", recipe(args, distill)), "--out", run,
             "--no-progress", "--no-tensorboard", *extra)
    records = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    return statistics.mean(r["tokens_per_s"] for r in records[2:])


def fidelity(teacher_dir, cache_dir, dump):
    """Mean KL of the cached distribution against the full teacher distribution, two ways."""
    model = transformers.AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
    manifest = json.load(open(os.path.join(cache_dir, "manifest.json")))
    K, bits = manifest["top_k"], (manifest["vocab"] - 1).bit_length()
    blocks = [json.loads(x) for x in open(dump)]
    blocks = [b for b in blocks if b["split"] == "train"][: manifest["data"]["train_blocks"]]
    raw = open(os.path.join(cache_dir, "blocks-000000.bin"), "rb").read()
    id_bytes = (K * bits + 7) // 8
    token_bytes = manifest["layout"]["token_bytes"]
    codec, entropy, top_mass = [], [], []
    # Only the token part of each record is decoded here; the router part is skipped by its size.
    per_layer = ((manifest["router_top_k"] * max(1, (manifest["num_experts"] - 1).bit_length()) + 7) // 8
                 + 2 * manifest["router_top_k"] + 2) if manifest["router_top_k"] else 0
    rec = id_bytes + 2 * K + 2 + per_layer * len(manifest["moe_layers"])
    assert token_bytes == rec, (token_bytes, rec)
    block_bytes = 8 + manifest["data"]["block_size"] * rec
    with torch.no_grad():
        for bi, b in enumerate(blocks[:8]):
            logp = torch.log_softmax(model(input_ids=torch.tensor([b["ids"]])).logits[0, :, : manifest["vocab"]], -1)
            base = bi * block_bytes + 8
            for t in range(len(b["ids"])):
                r = raw[base + t * rec: base + (t + 1) * rec]
                v = int.from_bytes(r[:id_bytes], "little")
                ids = torch.tensor([(v >> (k * bits)) & ((1 << bits) - 1) for k in range(K)])
                vals = torch.frombuffer(bytearray(r[id_bytes: id_bytes + 2 * K + 2]), dtype=torch.int16).to(torch.int32)
                cached = (vals << 16).view(torch.float32)  # bf16 -> fp32
                P = logp[t]
                Pb = torch.cat([P[ids], torch.logsumexp(P.scatter(0, ids, float("-inf")), 0, keepdim=True)])
                Qb = torch.log_softmax(cached, 0)  # what the loss uses: the K log-probs and the tail, renormalised
                codec.append((Pb.exp() * (Pb - Qb)).sum().item())
                entropy.append(-(P.exp() * P).sum().item())
                top_mass.append(P[ids].exp().sum().item())
    return statistics.mean(codec), statistics.mean(entropy), statistics.mean(top_mass)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moeforge", default=None, help="moeforge binary (else MOEFORGE_BIN / build/moeforge)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.moeforge:
        os.environ["MOEFORGE_BIN"] = os.path.abspath(args.moeforge)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rng = random.Random(3)
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            for _ in range(120):
                f.write(" ".join(rng.choice(WORDS) for _ in range(60)) + "\n\n")
        small = os.path.join(tmp, "tok300")
        moeforge("tokenizer", "train", "--data", corpus, "--vocab", 300, "--out", small)
        tok = os.path.join(tmp, "tok")
        widen_tokenizer(small, tok, VOCAB)
        teacher, student = os.path.join(tmp, "teacher"), os.path.join(tmp, "student")
        build_model(teacher, 1, 60.0, tok)
        build_model(student, 2, 1.0, tok)

        cache = os.path.join(tmp, "cache")
        t0 = time.perf_counter()
        cache_recipe = write_recipe(os.path.join(tmp, "cache_recipe.json"), recipe(args, {"top_k": 0}))
        out = moeforge("teacher-cache", teacher, "--data", corpus, "--recipe", cache_recipe, "--top-k", 64, "--router-top-k", 4,
                       "--out", cache, "--no-progress").stdout
        wall = time.perf_counter() - t0
        m = json.load(open(os.path.join(cache, "manifest.json")))
        tokens = m["data"]["train_blocks"] * SEQ
        bits = (m["vocab"] - 1).bit_length()
        token_part = (64 * bits + 7) // 8 + 2 * 64 + 2
        size = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache) if f.startswith("blocks-"))
        per_token = (size - 8 * m["data"]["train_blocks"]) / tokens
        router_part = per_token - token_part
        write_tps = float(out.split(" tokens/s")[0].rsplit("B/token, ", 1)[1])
        print(f"cache: {tokens} tokens, {per_token:.1f} B/token = token part {token_part} (K=64, {bits}-bit ids, bf16) + "
              f"router part {router_part:.1f} (top-4 of 32 on {len(m['moe_layers'])} layers); "
              f"{write_tps:.0f} tokens/s written ({wall:.1f} s wall incl. loading)")
        print(f"cache bytes ratio (token part / target 160 B/token): {token_part / 160:.2f}")

        dump = os.path.join(tmp, "blocks.jsonl")
        moeforge("data", "inspect", "--data", corpus, "--tokenizer", tok, "--block-size", SEQ, "--validation-fraction", 0,
                 "--seed", 0, "--dump", dump)
        codec, entropy, top_mass = fidelity(teacher, cache, dump)
        print(f"fidelity: teacher entropy {entropy:.2f} nats, top-64 mass {top_mass:.3f}; "
              f"mean KL(bucketed teacher || cached) {codec:.2e} nats")
        print(f"cache KL ratio (mean KL / target 1e-3): {codec / 1e-3:.3f}")

        ce = train_tokens_per_s(tmp, "ce", student, corpus, args)
        cached = train_tokens_per_s(tmp, "cache", student, corpus, args, {"top_k": 0}, ("--teacher-cache", cache))
        online = train_tokens_per_s(tmp, "online", student, corpus, args, {"teacher": teacher})
        print(f"training tokens/s: CE {ce:.0f}, KD from the cache {cached:.0f}, KD online {online:.0f}; "
              f"teacher forward (cache writer) {write_tps:.0f}")
        print(f"cache step time ratio (KD from cache / CE, target <= 1.15): {ce / cached:.2f}")
        budget = 1.0 / ce + 1.0 / write_tps
        print(f"online step time ratio (online KD / (CE step + teacher forward), target <= 1.0): {(1.0 / online) / budget:.2f}")


if __name__ == "__main__":
    main()
