"""Distillation parity (issue 15): `moeforge train` with losses.distill against an independent
reference built on transformers' logits and router logits, in fp32, on tiny Mixtral student and
teacher models made with transformers' own classes (families.py; different seeds; the teacher's
vocabulary padded by 8 rows, which the KD loss must leave out).

moeforge runs 2 steps with `--dump-steps 2` (RUN/dump/step_0.safetensors: the batch, the loss parts and
the unclipped gradient of every trained tensor, src/train/step_dump.h). The reference feeds the same
batch to both models (AutoModelForCausalLM, eager) and computes, with targets = positions t whose
ids[t + 1] has loss_mask 1 (n of them):
  CE     = sum -log q(ids[t+1]) / n
  KD     = T^2 * sum_t D(P_T, Q_T) / n, P_T = softmax(teacher[:300] / T), Q_T = softmax(student / T)
           (300 = the tokenizer's ids; the teacher's padded rows are dropped); D = KL(P||Q), KL(Q||P), or
           TRL's generalised JSD (M = beta P + (1 - beta) Q, beta KL(P||M) + (1 - beta) KL(Q||M));
           with top_k K both sides regroup into the teacher's top-K ids + one tail bucket
  router = mean over MoE layers of mean over real tokens of Tr^2 KL(softmax(t_l / Tr) || softmax(s_l / Tr))
  total  = ce_weight CE + weight KD + router_weight router + lb_coef LB + z_coef Z  (LB, Z as
           test_train_model_parity.py)
and checks: step-0 total and CE |rel| <= 1e-5; every trained tensor's gradient max|diff| / max|ref|
<= 1e-4; metrics.jsonl's kl (KL(P||Q) at T = 1, full vocabulary) and agreement (argmax equal) match.
An annealed temperature is checked at its start value (step 0).
Measured: total rel <= 1e-7, worst gradient 3e-7..1e-6, for all three cases (~10 s).
Failure proofs run by hand: the teacher's 8 padded rows kept in the reference (student -1e4 there)
fails the reverse-KL total (rel 0.9) and kl; beta 0.3 -> 0.35 in the reference JSD fails the norm and
router gradients (1.1e-4..2.4e-4).
Env: MOEFORGE_BIN. Exit 0 = pass.
"""
import json
import os
import sys
import tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families  # noqa: E402
from train_common import WORDS, moeforge, write_recipe  # noqa: E402

torch.set_num_threads(2)
VOCAB = 300
failures = []

# label, distill options, select, lb_coef, z_coef
CASES = [
    ("forward_kl_router", {"temperature": 2.0, "ce_weight": 0.5, "router_weight": 0.3, "chunk_tokens": 7},
     ["router", "lm_head"], 0.1, 0.01),
    ("forward_kl_top16", {"temperature": 1.0, "top_k": 16, "weight": 0.7, "ce_weight": 0.3}, ["router", "lm_head", "norms"], 0.0, 0.0),
    ("jsd_top16", {"divergence": "jsd", "beta": 0.3, "temperature": 1.5, "top_k": 16, "weight": 0.8},
     ["router", "lm_head", "norms"], 0.01, 0.001),
    ("reverse_kl_annealed", {"divergence": "reverse_kl", "temperature": {"start": 3.0, "end": 1.0}, "ce_weight": 0.0},
     ["attention & layers=1", "lm_head"], 0.0, 0.0),
]


def kl(a, b):  # KL(A||B) per row from log-probabilities
    return (a.exp() * (a - b)).sum(-1)


def buckets(logp, ids):
    top = logp.gather(-1, ids)
    rest = logp.scatter(-1, ids, float("-inf"))
    tail = torch.logsumexp(rest, -1, keepdim=True).clamp_min(torch.log(torch.tensor(1e-20)))
    return torch.cat([top, tail], -1)


def div(P, Q, kind, beta):
    if kind == "forward_kl" or (kind == "jsd" and beta == 0):
        return kl(P, Q)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1):
        return kl(Q, P)
    M = torch.log(beta * P.exp() + (1 - beta) * Q.exp())
    return beta * kl(P, M) + (1 - beta) * kl(Q, M)


def router_hooks(model, store):
    mods = [m for m in model.modules() if type(m).__name__.lower().endswith(("topkrouter", "topk_router"))]
    for m in mods:
        m.register_forward_hook(lambda mod, inp, out: store.append((out[0].reshape(-1, out[0].shape[-1]),
                                                                    out[2].reshape(-1, out[2].shape[-1]))))
    return mods


def reference(student_dir, teacher_dir, dump, d, lb_coef, z_coef):
    load = dict(dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    student = transformers.AutoModelForCausalLM.from_pretrained(student_dir, **load).eval()
    teacher = transformers.AutoModelForCausalLM.from_pretrained(teacher_dir, **load).eval()
    s_hooks, t_hooks = [], []
    router_hooks(student, s_hooks)
    router_hooks(teacher, t_hooks)
    data = load_file(dump)
    ids, mask = data["input_ids"], data["loss_mask"].long()
    trained = {n.replace(".block_sparse_moe.", ".mlp."): data[n] for n in data if n.startswith(("model.", "lm_head"))}
    params = dict(student.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in trained)
    missing = sorted(set(trained) - set(params))
    if missing:
        raise RuntimeError(f"dumped gradients without a parameter: {missing[:3]}")
    out = student(input_ids=ids, output_router_logits=True)
    with torch.no_grad():
        t_logits = teacher(input_ids=ids).logits[..., :VOCAB]
    s_logits = out.logits[:, :-1]
    t_logits = t_logits[:, :-1]
    w = mask[:, 1:].bool()
    n = int(w.sum())
    s = s_logits[w]  # [n, V]
    t = t_logits[w]
    target = ids[:, 1:][w]
    ce = -torch.log_softmax(s, -1).gather(-1, target[:, None]).sum() / n
    T = d.get("temperature", 1.0)
    T = T["start"] if isinstance(T, dict) else T
    P, Q = torch.log_softmax(t / T, -1), torch.log_softmax(s / T, -1)
    if d.get("top_k", 0):
        top = (t / T).topk(d["top_k"], -1).indices
        P, Q = buckets(P, top), buckets(Q, top)
    kd = T * T * div(P, Q, d.get("divergence", "forward_kl"), d.get("beta", 0.5)).sum() / n
    # Real tokens: up to each row's last target.
    Tn = ids.shape[1]
    pos = torch.arange(Tn).unsqueeze(0)
    last = torch.where(mask.bool(), pos, torch.full_like(pos, -1)).amax(1, keepdim=True)
    real = (pos <= last).reshape(-1)
    n_real = int(real.sum())
    E, K = student.config.num_local_experts, student.config.num_experts_per_tok
    lbs, zs, rkds = [], [], []
    Tr = d.get("router_temperature", 4.0)
    for (lg, idx), (tlg, _) in zip(s_hooks, t_hooks):
        probs = torch.softmax(lg, -1)
        f = torch.bincount(idx[real].reshape(-1), minlength=E).float() / (n_real * K)
        lbs.append(E * (f * (probs * real[:, None]).sum(0) / n_real).sum())
        zs.append((torch.logsumexp(lg, -1).pow(2) * real).sum() / n_real)
        rkds.append(Tr * Tr * (kl(torch.log_softmax(tlg / Tr, -1), torch.log_softmax(lg / Tr, -1)) * real).sum() / n_real)
    lb, z, rkd = torch.stack(lbs).mean(), torch.stack(zs).mean(), torch.stack(rkds).mean()
    total = d.get("ce_weight", 1.0) * ce + d.get("weight", 1.0) * kd + d.get("router_weight", 0.0) * rkd + lb_coef * lb + z_coef * z
    total.backward()
    with torch.no_grad():
        kl1 = kl(torch.log_softmax(t, -1), torch.log_softmax(s, -1)).sum().item() / n
        agree = (s.argmax(-1) == t.argmax(-1)).float().mean().item()
    grads = {name: params[name].grad for name in trained}
    return {"total": total.item(), "ce": ce.item(), "kl": kl1, "agreement": agree}, grads, trained


def run_case(root, corpus, tok, student_dir, teacher_dir, case):
    label, distill, select, lb_coef, z_coef = case
    recipe = {"seed": 0, "threads": 2, "probe": "warn", "log_every": 1,
              "phases": [{"steps": 2, "select": select, "batch_size": 2, "seq_len": 24,
                          "optimizer": {"type": "adamw", "lr": 1e-3}, "clip_grad_norm": 0,
                          "losses": {"lb_coef": lb_coef, "z_coef": z_coef, "distill": distill}}]}
    run = os.path.join(root, label)
    moeforge("train", student_dir, "--data", corpus, "--tokenizer", tok, "--teacher", teacher_dir,
             "--recipe", write_recipe(run + ".json", recipe), "--out", run, "--no-progress", "--no-tensorboard",
             "--dump-steps", 1)
    dump = os.path.join(run, "dump", "step_0.safetensors")
    with safe_open(dump, "pt") as f:
        assert int(f.metadata()["micro_batches"]) == 1
    with open(os.path.join(run, "metrics.jsonl")) as f:
        m0 = json.loads(f.readline())
    ref, grads, ours = reference(student_dir, teacher_dir, dump, distill, lb_coef, z_coef)
    d0 = load_file(dump)
    got = {"total": float(d0["loss.total"]), "ce": float(d0["loss.ce"]), "kl": m0["kl"], "agreement": m0["agreement"]}
    for key, tol in (("total", 1e-5), ("ce", 1e-5), ("kl", 1e-4), ("agreement", 1e-6)):
        r = abs(got[key] - ref[key]) / max(abs(ref[key]), 1e-12)
        if r > tol:
            failures.append(f"{label}: {key} moeforge {got[key]:.8g} vs reference {ref[key]:.8g} (rel {r:.2e})")
    worst = 0.0
    for name, g in grads.items():
        if g is None:
            failures.append(f"{label}: {name}: the reference gives no gradient")
            continue
        e = (ours[name] - g).abs().max().item() / max(g.abs().max().item(), 1e-12)
        worst = max(worst, e)
        if e > 1e-4:
            failures.append(f"{label}: gradient of {name}: rel max diff {e:.2e}")
    print(f"{label}: total {got['total']:.6f} (ref {ref['total']:.6f}), {len(grads)} gradients, worst rel {worst:.1e}, "
          f"kl {got['kl']:.4f}, agreement {got['agreement']:.3f}")


def main():
    with tempfile.TemporaryDirectory() as root:
        import random
        rng = random.Random(7)
        corpus = os.path.join(root, "corpus.txt")
        with open(corpus, "w") as f:
            for _ in range(60):
                f.write(" ".join(rng.choice(WORDS) for _ in range(40)) + "\n\n")
        tok = os.path.join(root, "tok")
        moeforge("tokenizer", "train", "--data", corpus, "--vocab", VOCAB, "--out", tok)
        student_dir, teacher_dir = os.path.join(root, "student"), os.path.join(root, "teacher")
        families.build_tiny_model("mixtral", student_dir, seed=0)
        families.build_tiny_model("mixtral", teacher_dir, seed=1, vocab_size=VOCAB + 8)
        for case in CASES:
            try:
                run_case(root, corpus, tok, student_dir, teacher_dir, case)
            except Exception as e:  # noqa: BLE001 (report every case)
                failures.append(f"{case[0]}: {type(e).__name__}: {e}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
