"""Prefill and decode tokens/s of tiny Mixtral-shaped and GPT-OSS-shaped models: `moeforge generate`
(greedy, KV cache) against transformers' generate on the same torch, same threads, same run, CPU, fp32
or bf16 (`--dtype`: both sides hold and run the model in that dtype).

    .venv/bin/python bench/generate_bench.py --build build [--threads 2] [--prompt 256] [--new 64] [--dtype bf16]

moeforge's times come from its --json "timing" (prefill = prompt pass + first token; decode = the
rest), transformers' from a timed prompt forward and a timed generate with the same cache use.
Model load time is excluded on both sides. A `generate` process runs its prompt once, cold (first
touch of every activation buffer and weight page), while transformers' prefill is the best of
warm repeats; the "warm" column is moeforge's same prompt pass (KV cache, last-token logits),
best of repeats in one process (bench/forward_profile_bench --prefill 1), the like-for-like figure.
Target (issue 19): >= 1.2x transformers on prefill and decode.
"""
import argparse
import gzip
import json
import os
import subprocess
import shutil
import tempfile
import time

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {
    "mixtral": lambda: transformers.MixtralConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, max_position_embeddings=2048,
        tie_word_embeddings=False),
    "gpt_oss": lambda: transformers.GptOssConfig(
        vocab_size=4096, hidden_size=256, intermediate_size=256, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, head_dim=32, num_local_experts=8, num_experts_per_tok=2, sliding_window=128,
        max_position_embeddings=131072, layer_types=["sliding_attention", "full_attention"] * 2),
}


def make_tokenizer(binary, directory, vocab):
    """A byte-level BPE trained by moeforge on the embedded corpus, and a prompt text from it."""
    corpus = os.path.join(ROOT, "data", "corpus")
    subprocess.run([binary, "tokenizer", "train", "--vocab", str(vocab), "--data", corpus, "--out", directory],
                   check=True, capture_output=True)
    with gzip.open(os.path.join(corpus, "prose.jsonl.gz"), "rt") as f:
        text = " ".join(json.loads(next(f))["text"] for _ in range(1))
        while len(text) < 20000:
            text += " " + json.loads(next(f))["text"]
    return text


def prompt_of(tokenizer_dir, text, length):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    ids = tok.encode(text, add_special_tokens=False).ids[:length]
    return ids, tok.decode(ids)


def peer_times(model, prompt_ids, new_tokens, repeats):
    ids = torch.tensor([prompt_ids])
    best_prefill = best_total = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids, use_cache=True, logits_to_keep=1)  # as its generate() prefills: last position's logits
            best_prefill = min(best_prefill, time.perf_counter() - start)
            start = time.perf_counter()
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           use_cache=True, pad_token_id=0)
            best_total = min(best_total, time.perf_counter() - start)
    return best_prefill, max(best_total - best_prefill, 1e-9)


def ours_times(binary, model_dir, prompt_text, new_tokens, repeats, threads, dtype):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    best_prefill = best_decode = float("inf")
    for _ in range(repeats):
        out = subprocess.run([binary, "generate", model_dir, "--prompt", prompt_text, "--max-new", str(new_tokens),
                              "--ignore-eos", "--no-special", "--json", "--dtype", dtype], capture_output=True, text=True, env=env, check=True)
        timing = json.loads(out.stdout)["timing"]
        # per-token time, so a re-tokenised prompt one token longer or shorter compares fairly
        best_prefill = min(best_prefill, timing["prefill_s"] / timing["prefill_tokens"])
        best_decode = min(best_decode, timing["decode_s"] / max(timing["decode_tokens"], 1) * (new_tokens - 1))
    return best_prefill, best_decode


def ours_warm_prefill(build, model_dir, tokens, threads, dtype):
    """Seconds per prompt token of moeforge's prompt pass, warm (best of repeats in one process)."""
    binary = os.path.join(build, "bench", "forward_profile_bench")
    out = subprocess.run([binary, model_dir, "--prefill", "1", "--tokens", str(tokens), "--iters", "10", "--top", "0",
                          "--threads", str(threads), "--dtype", dtype], capture_output=True, text=True, check=True).stdout
    best_ms = float(out.split("best ")[1].split(" ms")[0])
    return best_ms / 1e3 / tokens


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.set_num_threads(args.threads)
    binary = os.path.abspath(os.path.join(args.build, "moeforge"))
    print(f"generate bench: prompt {args.prompt} tokens, {args.new} new, greedy, {args.threads} threads, CPU {args.dtype}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"{'model':8s} {'prefill tok/s (ours cold / hf / ratio)':>40s} {'warm / ratio':>16s} "
          f"{'decode tok/s (ours / hf / ratio)':>36s}")
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = os.path.join(tmp, "tokenizer")
        text = make_tokenizer(binary, tok_dir, 4096)
        for name, make_config in SHAPES.items():
            torch.manual_seed(0)
            config = make_config()
            model = transformers.AutoModelForCausalLM.from_config(config).float().eval()
            model_dir = os.path.join(tmp, name)
            model.save_pretrained(model_dir)  # fp32 on disk: each side converts to --dtype as it loads
            model = model.to(dtype)
            for name_ in os.listdir(tok_dir):
                shutil.copy(os.path.join(tok_dir, name_), model_dir)
            prompt_ids, prompt_text = prompt_of(tok_dir, text, args.prompt)
            hf_prefill, hf_decode = peer_times(model, prompt_ids, args.new, args.repeats)
            our_prefill, our_decode = ours_times(binary, model_dir, prompt_text, args.new, args.repeats, args.threads, args.dtype)
            warm = 1.0 / ours_warm_prefill(args.build, model_dir, len(prompt_ids), args.threads, args.dtype)
            pre = (1.0 / our_prefill, len(prompt_ids) / hf_prefill)
            dec = ((args.new - 1) / our_decode, (args.new - 1) / hf_decode)
            print(f"{name:8s} {pre[0]:16.0f} / {pre[1]:8.0f} / {pre[0] / pre[1]:5.2f}x {warm:9.0f} / {warm / pre[1]:4.2f}x "
                  f"{dec[0]:14.1f} / {dec[1]:8.1f} / {dec[0] / dec[1]:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
