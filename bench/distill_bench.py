"""Distillation (issue 15): teacher-cache size and write speed on a 201,088-token vocabulary (GPT-OSS's),
the cache's fidelity, and the step time of training from the cache and from an online teacher.

Setup: a 300-token BPE tokenizer trained on a small corpus, widened to 201,088 ids (extra tokens the
text never produces, so the teacher's top-K ids span all 18 bits); a 2-layer Mixtral teacher and
student of that vocabulary (hidden 64, 32 experts top-4, like GPT-OSS's router), the teacher's
lm_head scaled so its next-token entropy is a few nats (a random head is nearly uniform, where no
top-K cache can be faithful).
  - cache: `moeforge teacher-cache --top-k 64 --router-top-k 4`, codec compact (the default) and bf16:
    bytes per token measured from the files (token part, router part), write tokens/s. Target:
    <= 160 B/token for the token part.
  - fidelity, against the full teacher distribution P (transformers, fp32) on the cached blocks:
    KL(bucket(P) || cached) over the K ids + tail, what the loss sees (the records decoded here, by
    this script, not by moeforge). Target: mean KL <= 1e-3 nats.
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


class Bits:
    """LSB-first bit reader over one compact block's token stream (docs/TRAINING.md "Teacher caches")."""

    def __init__(self, data):
        self.v, self.pos = int.from_bytes(data, "little"), 0

    def get(self, n):
        x = (self.v >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return x

    def exp_golomb(self, k):
        ones = 0
        while self.get(1):
            ones += 1
        n = ones + k
        return ((1 << n) | self.get(n)) - (1 << k)


def bf16(b):
    return torch.tensor([b], dtype=torch.int32).__lshift__(16).view(torch.float32)[0].item()


def cached_tokens(cache_dir, manifest, blocks):
    """Per token of the first `blocks` blocks of file 0: (ids, cached log-probs + tail), decoded here
    independently of moeforge's reader."""
    raw = open(os.path.join(cache_dir, "blocks-000000.bin"), "rb").read()
    K, T, vocab = manifest["top_k"], manifest["data"]["block_size"], manifest["vocab"]
    router_bytes = manifest["layout"]["router_bytes"]
    out = []
    if manifest["codec"]["name"] == "bf16":
        bits = (vocab - 1).bit_length()
        id_bytes = (K * bits + 7) // 8
        rec = manifest["layout"]["token_bytes"]
        for bi in range(blocks):
            base = bi * (8 + T * rec) + 8
            for t in range(T):
                r = raw[base + t * rec: base + (t + 1) * rec]
                v = int.from_bytes(r[:id_bytes], "little")
                ids = torch.tensor([(v >> (k * bits)) & ((1 << bits) - 1) for k in range(K)])
                vals = torch.frombuffer(bytearray(r[id_bytes: id_bytes + 2 * K + 2]), dtype=torch.int16).to(torch.int32)
                out.append((ids, (vals << 16).view(torch.float32)))
        return out
    n = int.from_bytes(raw[-16:-8], "little")
    assert raw[-8:] == b"MFTCIDX1" and n >= blocks
    index = raw[-(8 * (2 * n + 1) + 16):]
    offsets = [int.from_bytes(index[8 * i: 8 * i + 8], "little") for i in range(n + 1)]
    for bi in range(blocks):
        r = Bits(raw[offsets[bi] + 8 + T * router_bytes: offsets[bi + 1]])
        for _ in range(T):
            k_id, prev, ids = r.get(5), -1, []
            for _ in range(K):
                prev += r.exp_golomb(k_id) + 1
                ids.append(prev)
            r.get(max(1, (K - 1).bit_length()))  # position of the most likely id (not needed for the KL)
            k_p = r.get(3)
            q = torch.tensor([float(r.exp_golomb(k_p)) for _ in range(K)], dtype=torch.float64)
            p = (q ** 2 + 1 / 12) / 255 ** 2  # the mean of p over each bin of sqrt(p)
            tail = bf16(r.get(16))
            top_mass = 1.0 if tail == float("-inf") else -torch.expm1(torch.tensor(tail, dtype=torch.float64)).item()
            logp = torch.log(p * top_mass / p.sum()).to(torch.float32)
            out.append((torch.tensor(ids), torch.cat([logp, torch.tensor([tail])])))
    return out


def fidelity(teacher_dir, cache_dir, dump, blocks=8):
    """Mean KL of the cached distribution (the K ids + tail) against the full teacher distribution."""
    model = transformers.AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
    manifest = json.load(open(os.path.join(cache_dir, "manifest.json")))
    rows = [json.loads(x) for x in open(dump)]
    rows = [b for b in rows if b["split"] == "train"][: manifest["data"]["train_blocks"]]
    tokens = cached_tokens(cache_dir, manifest, blocks)
    T = manifest["data"]["block_size"]
    codec, entropy, top_mass = [], [], []
    with torch.no_grad():
        for bi, b in enumerate(rows[:blocks]):
            logp = torch.log_softmax(model(input_ids=torch.tensor([b["ids"]])).logits[0, :, : manifest["vocab"]], -1)
            for t in range(len(b["ids"])):
                ids, cached = tokens[bi * T + t]
                P = logp[t]
                Pb = torch.cat([P[ids], torch.logsumexp(P.scatter(0, ids, float("-inf")), 0, keepdim=True)])
                Qb = torch.log_softmax(cached, 0)  # what the loss uses: the K log-probs and the tail, renormalised
                codec.append((Pb.exp() * (Pb - Qb)).sum().item())
                entropy.append(-(P.exp() * P).sum().item())
                top_mass.append(P[ids].exp().sum().item())
    return statistics.mean(codec), statistics.mean(entropy), statistics.mean(top_mass)


def cache_bytes(cache_dir):
    """(token part, router part) in bytes per token, measured: the blocks without their 8-byte hashes and the index."""
    m = json.load(open(os.path.join(cache_dir, "manifest.json")))
    tokens = m["data"]["train_blocks"] * m["data"]["block_size"]
    blocks = 0
    for f in sorted(os.listdir(cache_dir)):
        if not f.startswith("blocks-"):
            continue
        raw = open(os.path.join(cache_dir, f), "rb").read()
        if m["codec"]["name"] == "bf16":
            blocks += len(raw)
        else:
            n = int.from_bytes(raw[-16:-8], "little")
            blocks += len(raw) - (8 * (2 * n + 1) + 16)
    per_token = (blocks - 8 * m["data"]["train_blocks"]) / tokens
    router = m["layout"]["router_bytes"]
    return per_token - router, router


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

        cache_recipe = write_recipe(os.path.join(tmp, "cache_recipe.json"), recipe(args, {"top_k": 0}))
        dump = os.path.join(tmp, "blocks.jsonl")
        moeforge("data", "inspect", "--data", corpus, "--tokenizer", tok, "--block-size", SEQ, "--validation-fraction", 0,
                 "--seed", 0, "--dump", dump)
        caches = {}
        for codec in ("compact", "bf16"):
            cache = caches[codec] = os.path.join(tmp, "cache-" + codec)
            t0 = time.perf_counter()
            out = moeforge("teacher-cache", teacher, "--data", corpus, "--recipe", cache_recipe, "--top-k", 64, "--router-top-k", 4,
                           "--codec", codec, "--out", cache, "--no-progress").stdout
            wall = time.perf_counter() - t0
            m = json.load(open(os.path.join(cache, "manifest.json")))
            token_part, router_part = cache_bytes(cache)
            tps = float(out.split(" tokens/s")[0].rsplit("B/token, ", 1)[1])
            if codec == "compact":
                write_tps = tps
            print(f"cache ({codec}): {m['data']['train_blocks'] * SEQ} tokens, token part {token_part:.1f} B/token "
                  f"(K=64 of {m['vocab']} ids) + router part {router_part} B/token (top-4 of 32 on {len(m['moe_layers'])} layers); "
                  f"{tps:.0f} tokens/s written ({wall:.1f} s wall incl. loading)")
            if codec == "compact":
                print(f"cache bytes ratio (token part / target 160 B/token): {token_part / 160:.2f}")
            kl, entropy, top_mass = fidelity(teacher, cache, dump)
            print(f"fidelity ({codec}): teacher entropy {entropy:.2f} nats, top-64 mass {top_mass:.3f}; "
                  f"mean KL(bucketed teacher || cached) {kl:.2e} nats")
            if codec == "compact":
                print(f"cache KL ratio (mean KL / target 1e-3): {kl / 1e-3:.3f}")
        cache = caches["compact"]

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
