"""`moeforge merge --mergekit-config moe.yml` against mergekit-moe itself (PyPI mergekit 0.1.5) on the
same YAML: three tiny dense Llamas (a base and two experts, transformers' own classes) with a BPE
tokenizer; for every gate mode the two outputs, loaded by transformers, must have bitwise-equal
experts (a residual_scale on one of them), non-MoE tensors and config; routers at cosine >= 0.999
per row (mergekit runs its hidden modes in bf16; cheap_embed is fp32 on both sides) or, for the
random modes, the right distribution; and equal logits once mergekit's routers are put into
moeforge's model. A Qwen3 base with `architecture: qwen3` gives a Qwen3-MoE the same way.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import finish, run_moeforge  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(2)
MERGEKIT_MOE = os.path.join(os.path.dirname(sys.executable), "mergekit-moe")
WORDS = "the cat sat on a mat dog ran to park and saw bird fly over tree red blue small big".split()
PROMPTS = {  # different lengths within an expert: mergekit left-pads the batch
    "a": (["the cat sat on a mat", "a small red bird", "the dog ran to the park and saw a big tree"], ["blue sky"]),
    "b": (["a big blue tree over the park", "bird fly"], []),
}
# hidden_avg: mergekit averages over the padded batch length, pads included; one prompt per list
# (no padding) is where both mean "the prompt's tokens".
ONE_PROMPT = {"a": (["the dog ran to the park and saw a big tree"], ["blue sky"]), "b": (["a big blue tree over the park"], [])}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def build_models(tmp, family):
    rng = random.Random(7)
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n\n".join(" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(50)))
    tok = os.path.join(tmp, "tok")
    run_moeforge("tokenizer", "train", "--data", corpus, "--vocab", 300, "--out", tok)
    cfg_class = transformers.CONFIG_MAPPING[family]
    dirs = {}
    for i, name in enumerate(["base", "a", "b"]):
        torch.manual_seed(10 + i)
        extra = {"head_dim": 16} if family == "qwen3" else {}
        cfg = cfg_class(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=0, eos_token_id=0, pad_token_id=1,
                        tie_word_embeddings=False, **extra)
        model = transformers.AutoModelForCausalLM.from_config(cfg).to(torch.float32)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.2)  # larger than the default init, so layers change the residual stream visibly
        d = os.path.join(tmp, f"{family}_{name}")
        model.save_pretrained(d)
        for f in os.listdir(tok):
            shutil.copy(os.path.join(tok, f), d)
        dirs[name] = d
    return dirs


def write_config(path, dirs, gate_mode, extra=None, prompts=None):
    prompts = prompts or (ONE_PROMPT if gate_mode == "hidden_avg" else PROMPTS)
    lines = [f"base_model: {dirs['base']}", f"gate_mode: {gate_mode}", "dtype: float32", "experts_per_token: 2", "experts:"]
    for name in ("a", "b"):
        pos, neg = prompts[name]
        lines.append(f"  - source_model: {dirs[name]}")
        lines.append("    positive_prompts:")
        lines += [f'      - "{p}"' for p in pos]
        if neg:
            lines.append("    negative_prompts: [" + ", ".join(f"'{p}'" for p in neg) + "]")
        if name == "b":
            lines.append("    residual_scale: 0.5")
    lines += extra or []
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def load(d):
    return transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()


def router_names(state):
    return sorted(k for k in state if k.endswith("mlp.gate.weight") and state[k].dim() == 2)


def compare(label, mk_dir, mf_dir, gate_mode, hidden_size):
    mk, mf = load(mk_dir), load(mf_dir)
    mk_state, mf_state = mk.state_dict(), mf.state_dict()
    check(sorted(mk_state) == sorted(mf_state), f"{label}: tensor names differ: {sorted(set(mk_state) ^ set(mf_state))[:6]}")
    routers = router_names(mk_state)
    check(len(routers) == 2, f"{label}: expected 2 router weights, got {routers}")
    for name in mk_state:
        if name in routers or name not in mf_state:
            continue
        check(torch.equal(mk_state[name], mf_state[name]),
              f"{label}: {name} differs (max {(mk_state[name] - mf_state[name]).abs().max().item():.3g})")
    worst = 1.0
    for name in routers:
        a, b = mk_state[name].double(), mf_state[name].double()
        if gate_mode in ("random", "uniform_random"):
            bound = 1 / math.sqrt(hidden_size)
            want_std = 1.0 if gate_mode == "random" else bound / math.sqrt(3)
            check(abs(b.std().item() - want_std) < 0.2 * want_std, f"{label}: {name} std {b.std().item():.4f}, want ~{want_std:.4f}")
            check(abs(b.mean().item()) < 0.2 * want_std, f"{label}: {name} mean {b.mean().item():.4f}")
            if gate_mode == "uniform_random":
                check(b.abs().max().item() <= bound, f"{label}: {name} exceeds +-1/sqrt(H)")
            continue
        cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
        worst = min(worst, cos.min().item())
        check(torch.allclose(b.norm(dim=1), torch.ones(b.shape[0], dtype=b.dtype), atol=1e-5), f"{label}: {name} rows not unit")
    bound = 0.99999 if gate_mode == "cheap_embed" else 0.999
    if gate_mode not in ("random", "uniform_random"):
        check(worst >= bound, f"{label}: worst router row cosine {worst:.6f} < {bound}")
    with torch.no_grad():
        for name in routers:
            mf.get_parameter(name).copy_(mk_state[name])
        ids = torch.tensor([[0, 5, 17, 42, 99, 3, 250, 7, 64, 12]])
        diff = (mk(ids).logits - mf(ids).logits).abs().max().item()
    check(diff <= 1e-5, f"{label}: logits differ by {diff:.3g} with mergekit's routers in moeforge's model")
    # The configs as transformers reads them (Qwen3-MoE's num_experts is saved as num_local_experts by
    # transformers 5 and as num_experts by moeforge, which both transformers 4 and 5 read).
    mk_cfg, mf_cfg = (transformers.AutoConfig.from_pretrained(d) for d in (mk_dir, mf_dir))
    for key in ("model_type", "architectures", "num_local_experts", "num_experts", "num_experts_per_tok", "hidden_size",
                "intermediate_size", "moe_intermediate_size", "norm_topk_prob", "num_hidden_layers", "decoder_sparse_step",
                "mlp_only_layers", "vocab_size", "rope_theta"):
        if hasattr(mk_cfg, key):
            check(getattr(mf_cfg, key, None) == getattr(mk_cfg, key),
                  f"{label}: config {key} = {getattr(mf_cfg, key, None)!r}, mergekit {getattr(mk_cfg, key)!r}")
    routers_note = "router rows N(0, 1) / U(+-1/sqrt(H))" if gate_mode in ("random", "uniform_random") else \
        f"router rows cosine >= {worst:.6f}"
    print(f"  {label}: experts/non-MoE tensors bitwise; {routers_note}; logits with equal routers {diff:.2g}")


def run_pair(tmp, dirs, family, gate_mode, extra=None):
    label = f"{family} {gate_mode}"
    cfg = write_config(os.path.join(tmp, f"{family}_{gate_mode}.yml"), dirs, gate_mode, extra)
    mk_out, mf_out = os.path.join(tmp, f"mk_{family}_{gate_mode}"), os.path.join(tmp, f"mf_{family}_{gate_mode}")
    r = subprocess.run([MERGEKIT_MOE, cfg, mk_out, "--device", "cpu"], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{label}: mergekit-moe failed: {r.stderr.strip()[-800:]}")
        return
    r = run_moeforge("merge", "--mergekit-config", cfg, "--out", mf_out, check=False)
    if r.returncode != 0:
        failures.append(f"{label}: moeforge merge failed: {(r.stdout + r.stderr).strip()}")
        return
    compare(label, mk_out, mf_out, gate_mode, 64)


def check_errors(tmp, dirs):
    bad = os.path.join(tmp, "bad.yml")
    cases = [
        ("gate_mode: sideways", "gate_mode: 'sideways' is not one of hidden, hidden_avg, cheap_embed, random, uniform_random"),
        ("architecture: deepseek", "architecture: 'deepseek'"),
        ("experts_per_token: 3", "experts_per_token: 3 must be in [1, 2]"),
        ("dtype: bfloat16", "dtype: bfloat16 differs from the base model's F32"),
    ]
    for line, message in cases:
        write_config(bad, dirs, "hidden")
        key = line.split(":")[0]
        text = "".join(l for l in open(bad).read().splitlines(keepends=True) if not l.startswith(key + ":"))
        open(bad, "w").write(text + line + "\n")
        r = run_moeforge("merge", "--mergekit-config", bad, "--out", os.path.join(tmp, "bad_out"), check=False)
        out = r.stdout + r.stderr
        check(r.returncode == 1 and message in out and bad in out and not os.path.exists(os.path.join(tmp, "bad_out")),
              f"bad config ({line}): rc {r.returncode}: {out.strip()}")
    with open(bad, "w") as f:
        f.write(f"base_model: {dirs['base']}\nexperts:\n  - source_model: nowhere/model\n    positive_prompts: [x]\n")
    r = run_moeforge("merge", "--mergekit-config", bad, "--out", os.path.join(tmp, "bad_out"), check=False)
    check(r.returncode == 1 and "experts[0].source_model: 'nowhere/model' is not a model directory" in r.stderr,
          f"missing source model: rc {r.returncode}: {r.stderr.strip()}")
    r = run_moeforge("merge", "--mergekit-config", bad, "--top-k", "2", "--out", os.path.join(tmp, "bad_out"), check=False)
    check(r.returncode == 1 and "--top-k cannot be combined with --mergekit-config" in r.stderr,
          f"flag with config: rc {r.returncode}: {r.stderr.strip()}")
    print("  bad configs: clear one-line errors, exit 1, nothing written")


def main():
    start = time.time()
    if not os.path.exists(MERGEKIT_MOE):
        sys.exit(f"FAIL: {MERGEKIT_MOE} is missing (make venv installs mergekit from requirements-dev.txt)")
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_models(tmp, "llama")
        for mode in ("hidden", "hidden_avg", "cheap_embed", "random", "uniform_random"):
            run_pair(tmp, dirs, "llama", mode)
        check_errors(tmp, dirs)
        os.makedirs(os.path.join(tmp, "q"))
        qwen = build_models(os.path.join(tmp, "q"), "qwen3")
        run_pair(tmp, qwen, "qwen3", "cheap_embed", ["architecture: qwen3"])
    sys.exit(finish("mergekit-moe parity", failures, start, "5 gate modes on Llama, cheap_embed on Qwen3, bad configs: ok"))


if __name__ == "__main__":
    main()
