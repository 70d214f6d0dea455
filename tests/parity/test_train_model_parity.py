"""Model-level training parity (issue 12; llm.c's test_gpt2 habit): `moeforge train` against
transformers + torch.optim.AdamW in fp32 on tiny random Mixtral, Qwen3-MoE and GPT-OSS models (and
DeepSeek-V3 when families.py has it), built with transformers' own classes (families.py).

moeforge runs 10 AdamW steps with `--dump-steps 10`, which writes RUN/dump/step_<i>.safetensors: the
batch (input_ids, loss_mask) as trained, the loss components and the unclipped gradient of every
trained tensor in Hugging Face names (src/train/step_dump.h). The reference loads the same checkpoint
(AutoModelForCausalLM, fp32, eager attention and experts, eval mode = no dropout / jitter), feeds the
dumped batches and checks:
  (1) the step-0 loss and its parts:       |ref - moeforge| / |ref| <= 1e-5 (total, ce) ; lb, z too
  (2) the step-0 gradient of every trained parameter: max|g_ref - g_moeforge| / max|g_ref| <= 1e-4 per
      tensor (the denominator is floored at 1e-6 x the largest gradient of the model, for tensors whose
      gradient is ~0 by symmetry); the set of trained tensors (and experts) must be the same
  (3) the losses of 10 AdamW steps:        relative difference <= 1e-4 at every step.

The loss as moeforge optimises it (src/train/losses.cpp, trainer.cpp), for a step of M micro-batches:
  total = CE + lb_coef * LB + z_coef * Z
  CE    = sum over the step's targets (loss_mask[t] = 1: ids[t] is predicted from ids[<t]) of -log p,
          divided by the targets of the whole step (all micro-batches): transformers' own causal-LM loss
          (model.loss_function, labels = ids where the mask is 1 else -100, num_items_in_batch = the
          step's targets, as HF's Trainer does for accumulation).
  LB    = mean over micro-batches of the mean over MoE layers of E * sum_i f_i P_i; f_i = share of all
          top-k picks of real tokens that went to expert i (no gradient), P_i = mean over real tokens of
          the routing probability: softmax over all E logits (Mixtral, Qwen3-MoE, and GPT-OSS, whose
          router takes the top-k of the logits and then a softmax over the k for the combine weights,
          but whose LB uses the full softmax, like transformers'), sigmoid for sigmoid routers
          (DeepSeek-V3). Real tokens: every position up to a row's last target (padding excluded).
  Z     = mean over micro-batches of the mean over MoE layers of mean_t logsumexp(router logits_t)^2
          (GPT-OSS: logits include the router bias).
The picks (f) are the expert indices transformers' router returned (forward hooks), not recomputed.

Against transformers' `router_aux_loss_coef * load_balancing_loss_func(router_logits, E, K)`: that
function concatenates the layers and counts per top-k slot, i.e. with f'_i = sum_l K f_li / L and
P'_i = sum_l P_li / L it returns E * sum_i f'_i P'_i. For one layer that is exactly K x ours; for
several layers it is not the mean of per-layer losses (cross-layer products). The test asserts the
per-layer identity load_balancing_loss_func((logits_l,)) == K * LB_l for every MoE layer of every
Switch-style family, and, on a Qwen3-MoE with a single MoE layer, that the model's own
outputs.aux_loss == K * LB and that transformers' own full training loss (labels=...,
router_aux_loss_coef = lb_coef / K, z_coef = 0) equals moeforge's total; that case trains on
transformers' own loss. The multi-layer aux_loss vs K * LB is printed for information.

Optimiser: moeforge's AdamW (decoupled decay lr * wd on matrices, stacked experts included, not on
vectors: norms, biases, sinks, per-expert biases) = torch.optim.AdamW with two param groups; constant
lr, no warmup; gradient clipping at 1.0 on the global norm of the trained tensors mirrored with
torch.nn.utils.clip_grad_norm_. A selection (router + some experts of a Mixtral, 2 micro-batches per
step) checks masking: unselected experts get no gradient, state or decay in moeforge; the reference
zeroes their gradient rows before clipping and restores their values after each step.

Measured (2-core CPU, torch 2.15, transformers 5.24; printed per case as "loss0 rel", "grad worst",
"10-step worst"; the batches change with the temp path, which seeds moeforge's document shuffle):
step-0 loss rel <= 1.3e-7, worst gradient 3e-7..9e-7 (attention k/q projections and q/k norms),
10-step losses <= 2e-7, for every case including DeepSeek-V3; the whole script takes ~15 s.
Failure proofs run by hand: lb_coef x 1.01 in the reference fails loss0 (1.8e-4) and grads (6e-4);
decaying vectors in the reference fails the 10-step losses (3e-4..7e-4); no expert masking in the
reference fails the selection case (5e-2).
Env: MOEFORGE_BIN. Exit 0 = pass.
"""
import json
import os
import re
import sys
import tempfile
import time

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families  # noqa: E402
from train_common import WORDS, moeforge, write_recipe  # noqa: E402

STEPS = 10
LOSS0_TOL = 1e-5
GRAD_TOL = 1e-4
LOSSES_TOL = 1e-4
GRAD_FLOOR = 1e-6  # x the largest gradient of the model: denominator floor for ~zero-gradient tensors
THREADS = 2
torch.set_num_threads(THREADS)

OPT = {"lr": 2e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
CLIP = 1.0

# label, family, config overrides, select, grad_accum, lb_coef, z_coef, train on transformers' own loss
CASES = [
    ("mixtral", "mixtral", {}, "all", 1, 0.1, 0.01, False),
    ("qwen3_moe", "qwen3_moe", {}, "all", 1, 0.1, 0.01, False),
    ("gpt_oss", "gpt_oss", {}, "all", 1, 0.1, 0.01, False),
    ("mixtral_router_experts", "mixtral", {}, ["router", "experts=0:1,1:0,1:3,2:5"], 2, 0.1, 0.01, False),
    ("qwen3_moe_one_moe_layer", "qwen3_moe", {"num_hidden_layers": 2, "mlp_only_layers": [0]}, "all", 1, 0.1, 0.0, True),
]
# DeepSeek-V3 (latent attention, sigmoid router with group-limited top-k and a selection bias, shared
# experts, a dense first layer) joins whenever families.py has it.
if "deepseek_v3" in families.FAMILIES:
    CASES.append(("deepseek_v3", "deepseek_v3", {}, "all", 1, 0.1, 0.01, False))

failures = []


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


# --- checkpoint names (on disk, what moeforge dumps) -> transformers' in-memory parameters --------------
EXPERT_RE = re.compile(r"^(?P<prefix>.+\.experts)\.(?P<e>\d+)\.(?P<proj>w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$")
PROJ = {"w1": "gate", "gate_proj": "gate", "w3": "up", "up_proj": "up", "w2": "down", "down_proj": "down"}


def to_memory(tensors, params):
    """{checkpoint name: tensor} -> {parameter name: (tensor, expert rows present or None)}. Per-expert
    checkpoint tensors (Mixtral w1/w2/w3, Qwen3-MoE/DeepSeek gate/up/down_proj) become transformers 5's
    fused [E, 2F, H] gate_up_proj ([gate; up] rows) and [E, H, F] down_proj; absent experts are zero."""
    out, experts = {}, {}
    for name, t in tensors.items():
        m = EXPERT_RE.match(name)
        if m:
            prefix = m["prefix"].replace(".block_sparse_moe.", ".mlp.")
            experts.setdefault(prefix, {}).setdefault(int(m["e"]), {})[PROJ[m["proj"]]] = t
        else:
            out[name.replace(".block_sparse_moe.", ".mlp.")] = (t, None)
    for prefix, by_expert in experts.items():
        gate_up, down = torch.zeros_like(params[prefix + ".gate_up_proj"]), torch.zeros_like(params[prefix + ".down_proj"])
        rows = torch.zeros(gate_up.shape[0], dtype=torch.bool)
        for e, parts in by_expert.items():
            gate_up[e] = torch.cat([parts["gate"], parts["up"]], 0)
            down[e] = parts["down"]
            rows[e] = True
        out[prefix + ".gate_up_proj"] = (gate_up, rows)
        out[prefix + ".down_proj"] = (down, rows)
    return out


# --- the reference -------------------------------------------------------------------------------------
def router_modules(model):
    return [m for m in model.modules() if type(m).__name__.lower().endswith(("topkrouter", "topk_router"))]


def expected_selection(label, model, select, params):
    """Parameter name -> expert rows (None = whole tensor) the case trains, from the test's own reading."""
    if select == "all":
        return {n: None for n in params}
    sel = {}
    for n in params:
        if re.search(r"\.mlp\.(gate|router)\.(weight|bias)$", n):
            sel[n] = None
    E = model.config.num_local_experts if hasattr(model.config, "num_local_experts") else model.config.num_experts
    for spec in select[1].split("=", 1)[1].split(","):
        layer, expert = map(int, spec.split(":"))
        for proj in ("gate_up_proj", "down_proj"):
            name = f"model.layers.{layer}.mlp.experts.{proj}"
            rows = sel.get(name)
            if rows is None:
                rows = torch.zeros(E, dtype=torch.bool)
            rows[expert] = True
            sel[name] = rows
    return sel


def micro_loss(model, hooks, ids, mask, total_targets, micro, lb_coef, z_coef, hf_loss):
    """One micro-batch: (loss to backpropagate, ce part, lb, z, info)."""
    hooks.clear()
    E = getattr(model.config, "num_local_experts", None) or getattr(model.config, "num_experts", None) or \
        model.config.n_routed_experts
    K = model.config.num_experts_per_tok
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    kwargs = {"output_router_logits": True} if hasattr(model.config, "output_router_logits") else {}
    if hf_loss:
        out = model(input_ids=ids, labels=labels, **kwargs)
    else:
        out = model(input_ids=ids, **kwargs)
    logits = out.logits
    ce = model.loss_function(logits=logits, labels=labels, vocab_size=model.config.vocab_size,
                             num_items_in_batch=total_targets)
    # Real tokens: up to each row's last target.
    T = ids.shape[1]
    pos = torch.arange(T).unsqueeze(0)
    last = torch.where(mask.bool(), pos, torch.full_like(pos, -1)).amax(1, keepdim=True)
    real = (pos <= last).reshape(-1)
    n_real = max(int(real.sum()), 1)
    sigmoid = model.config.model_type == "deepseek_v3"
    lbs, zs, per_layer_hf = [], [], []
    for router_logits, indices in hooks:
        lg = router_logits.float()
        probs = torch.sigmoid(lg) if sigmoid else torch.softmax(lg, -1)
        counts = torch.bincount(indices[real].reshape(-1), minlength=E).float()
        f = counts / (n_real * K)
        P = (probs * real.unsqueeze(1)).sum(0) / n_real
        lbs.append(E * (f * P).sum())
        zs.append((torch.logsumexp(lg, -1).pow(2) * real).sum() / n_real)
        if not sigmoid:
            lb_fn = sys.modules[type(model).__module__].load_balancing_loss_func
            mask_arg = None if bool(real.all()) else real.reshape(ids.shape).long()
            per_layer_hf.append((float(lb_fn((router_logits.detach(),), E, K, mask_arg)), K * float(lbs[-1].detach())))
    lb = torch.stack(lbs).mean()
    z = torch.stack(zs).mean()
    info = {"per_layer_hf": per_layer_hf, "aux_loss": getattr(out, "aux_loss", None), "K": K, "n_lb_layers": len(lbs)}
    if hf_loss:
        # transformers' own: CE mean over the micro-batch's targets + router_aux_loss_coef * aux_loss.
        info["hf_total"] = out.loss.item()
        loss = out.loss * (int(mask[:, 1:].sum()) / total_targets) + z_coef * z / micro
    else:
        loss = ce + (lb_coef * lb + z_coef * z) / micro
    return loss, ce.item(), lb.item(), z.item(), info


def reference_run(label, family, model_dir, dumps, select, lb_coef, z_coef, hf_loss):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager",
                                                              experts_implementation="eager").eval()
    params = dict(model.named_parameters())
    # The name mapping must reproduce the checkpoint itself.
    disk = load_file(os.path.join(model_dir, "model.safetensors"))
    mapped = to_memory(disk, params)
    state = model.state_dict()
    bad = [n for n, (t, _) in mapped.items() if n in state and not torch.equal(t, state[n])]
    missing = sorted(set(params) - set(mapped))
    if bad or missing:
        failures.append(f"{label}: checkpoint -> parameter mapping wrong: differs {bad[:3]}, missing {missing[:3]}")
        return None
    K = model.config.num_experts_per_tok
    if hf_loss:
        assert all(int(safe_open(p, "pt").metadata()["micro_batches"]) == 1 for p in dumps), "hf_loss cases use grad_accum 1"
        model.router_aux_loss_coef = lb_coef / K  # transformers' loss then carries moeforge's LB term
    hooks = []
    for m in router_modules(model):
        m.register_forward_hook(lambda mod, inp, out: hooks.append((out[0].reshape(-1, out[0].shape[-1]),
                                                                    out[2].reshape(-1, out[2].shape[-1]))))
    selection = expected_selection(label, model, select, params)
    for n, p in params.items():
        p.requires_grad_(n in selection)
    trained = [n for n in params if n in selection]
    decay = [params[n] for n in trained if params[n].dim() >= 2 and not n.endswith("bias")]
    no_decay = [params[n] for n in trained if not (params[n].dim() >= 2 and not n.endswith("bias"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPT["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=OPT["lr"], betas=tuple(OPT["betas"]), eps=OPT["eps"])
    result = {"losses": [], "parts0": None, "grads0": None, "selection": selection, "params": params, "info0": None}
    for step, dump in enumerate(dumps):
        with safe_open(dump, "pt") as f:
            meta = f.metadata()
        d = load_file(dump)
        M = int(meta["micro_batches"])
        ids_all, mask_all = d["input_ids"], d["loss_mask"].long()
        B = ids_all.shape[0] // M
        total_targets = int(mask_all[:, 1:].sum())
        opt.zero_grad(set_to_none=True)
        ce = lb = z = total = 0.0
        info0 = None
        for m in range(M):
            ids, mask = ids_all[m * B:(m + 1) * B], mask_all[m * B:(m + 1) * B]
            loss, ce_m, lb_m, z_m, info = micro_loss(model, hooks, ids, mask, total_targets, M, lb_coef, z_coef, hf_loss)
            loss.backward()
            ce, lb, z, total = ce + ce_m, lb + lb_m / M, z + z_m / M, total + loss.item()
            info0 = info0 or info
        result["losses"].append(total)
        if step == 0:
            result["parts0"] = {"ce": ce, "lb": lb, "z": z, "total": total}
            result["info0"] = info0
            result["grads0"] = {n: params[n].grad.detach().clone() for n in trained}
        with torch.no_grad():
            saved = {}
            for n, rows in selection.items():
                if rows is not None:
                    params[n].grad[~rows] = 0  # unselected experts: no gradient (and no norm share) in moeforge
                    saved[n] = params[n][~rows].clone()
            torch.nn.utils.clip_grad_norm_([params[n] for n in trained], CLIP)
            opt.step()
            for n, rows in selection.items():
                if rows is not None:
                    params[n][~rows] = saved[n]  # ... and neither state nor weight decay
    return result


# --- a case --------------------------------------------------------------------------------------------
def make_data(root):
    import random
    rng = random.Random(7)
    corpus = os.path.join(root, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(80):
            f.write(" ".join(rng.choice(WORDS) for _ in range(40)) + "\n\n")
    tok = os.path.join(root, "tok")
    moeforge("tokenizer", "train", "--data", corpus, "--vocab", 300, "--out", tok)
    return corpus, tok


def run_case(root, corpus, tok, case):
    label, family, overrides, select, accum, lb_coef, z_coef, hf_loss = case
    t0 = time.time()
    tmp = os.path.join(root, label)
    os.makedirs(tmp)
    model_dir = os.path.join(tmp, "model")
    families.build_tiny_model(family, model_dir, seed=0, **overrides)
    recipe = {"seed": 0, "threads": THREADS, "probe": "warn",
              "phases": [{"steps": STEPS, "select": select, "batch_size": 2, "seq_len": 32, "grad_accum": accum,
                          "optimizer": {"type": "adamw", **OPT}, "schedule": {"type": "constant"},
                          "losses": {"lb_coef": lb_coef, "z_coef": z_coef}, "clip_grad_norm": CLIP,
                          "routing": {"router_noise_std": 0.0}}]}
    run = os.path.join(tmp, "run")
    moeforge("train", model_dir, "--data", corpus, "--tokenizer", tok, "--recipe", write_recipe(run + ".json", recipe),
             "--out", run, "--no-progress", "--no-tensorboard", "--dump-steps", STEPS)
    with open(os.path.join(run, "metrics.jsonl")) as f:
        mf_losses = [json.loads(line)["loss"] for line in f]
    dumps = [os.path.join(run, "dump", f"step_{i}.safetensors") for i in range(STEPS)]
    if len(mf_losses) != STEPS or not all(os.path.exists(p) for p in dumps):
        failures.append(f"{label}: expected {STEPS} logged steps and dumps, got {len(mf_losses)} losses")
        return
    if max(int(load_file(dumps[0])["input_ids"].max()), 0) >= 300:
        failures.append(f"{label}: token id outside the model's vocabulary")
        return
    ref = reference_run(label, family, model_dir, dumps, select, lb_coef, z_coef, hf_loss)
    if ref is None:
        return
    d0 = load_file(dumps[0])
    # (1) step-0 loss and parts
    parts = {k: float(d0["loss." + k]) for k in ("ce", "lb", "z", "total")}
    r0 = ref["parts0"]
    loss0 = rel(parts["total"], r0["total"])
    for k in ("total", "ce", "lb", "z"):
        if k == "z" and z_coef == 0 and not r0[k]:
            continue
        d = rel(parts[k], r0[k]) if k != "z" or r0[k] else abs(parts[k])
        if d > LOSS0_TOL:
            failures.append(f"{label}: step-0 {k} moeforge {parts[k]:.8g} vs reference {r0[k]:.8g} (rel {d:.2e})")
    if rel(mf_losses[0], parts["total"]) > 1e-12:
        failures.append(f"{label}: metrics loss {mf_losses[0]} != dumped loss.total {parts['total']}")
    # transformers' own aux loss: per layer exactly K x ours; one MoE layer: the model's aux_loss too.
    info = ref["info0"]
    K = info["K"]
    hf_notes = ""
    for l, (hf, ours) in enumerate(info["per_layer_hf"]):
        if rel(hf, ours) > 1e-5:
            failures.append(f"{label}: MoE layer {l}: load_balancing_loss_func {hf:.8g} != K * LB_l {ours:.8g}")
    if info["aux_loss"] is not None:
        aux = info["aux_loss"].item()
        hf_notes = f"  HF aux_loss {aux:.6f} vs K*LB {K * r0['lb']:.6f}"
        if info["n_lb_layers"] == 1 and accum == 1 and rel(aux, K * parts["lb"]) > 1e-5:
            failures.append(f"{label}: one MoE layer: transformers' aux_loss {aux:.8g} != K * moeforge LB {K * parts['lb']:.8g}")
    if hf_loss:
        hf_total = info["hf_total"] + z_coef * r0["z"]
        d = rel(parts["total"], hf_total)
        hf_notes += f"  HF own loss rel {d:.1e}"
        if d > LOSS0_TOL:
            failures.append(f"{label}: transformers' own loss {hf_total:.8g} != moeforge total {parts['total']:.8g}")
    # (2) step-0 gradients
    params = ref["params"]
    got = to_memory({k: v for k, v in d0.items() if k not in ("input_ids", "loss_mask", "lr") and not k.startswith("loss.")},
                    params)
    selection = ref["selection"]
    if set(got) != set(selection):
        failures.append(f"{label}: dumped gradients {sorted(set(got) ^ set(selection))[:4]} differ from the selection")
    for n, rows in selection.items():
        if n in got and rows is not None and not torch.equal(got[n][1], rows):
            failures.append(f"{label}: {n}: trained experts {got[n][1].nonzero().flatten().tolist()} != "
                            f"{rows.nonzero().flatten().tolist()}")
    g_ref = {n: (g if selection[n] is None else g[selection[n]]) for n, g in ref["grads0"].items()}
    g_max = max(float(g.abs().max()) for g in g_ref.values())
    worst, worst_name = 0.0, ""
    for n, g in g_ref.items():
        if n not in got:
            continue
        mine = got[n][0] if selection[n] is None else got[n][0][selection[n]]
        if mine.shape != g.shape:
            failures.append(f"{label}: {n}: gradient shape {tuple(mine.shape)} vs {tuple(g.shape)}")
            continue
        err = float((mine - g).abs().max()) / max(float(g.abs().max()), GRAD_FLOOR * g_max)
        if err > worst:
            worst, worst_name = err, n
        if err > GRAD_TOL:
            failures.append(f"{label}: {n}: gradient max-abs-rel {err:.2e} > {GRAD_TOL}")
    # (3) 10-step losses
    steps_worst = max(rel(a, b) for a, b in zip(mf_losses, ref["losses"]))
    if steps_worst > LOSSES_TOL:
        failures.append(f"{label}: 10-step losses differ by up to {steps_worst:.2e}: moeforge {mf_losses} reference {ref['losses']}")
    print(f"{label:26s} loss0 {parts['total']:.6f} rel {loss0:.1e} (ce {parts['ce']:.5f} lb {parts['lb']:.5f} z {parts['z']:.5f})  "
          f"grad worst {worst:.1e} ({worst_name}, {len(g_ref)} tensors)  10-step worst {steps_worst:.1e} "
          f"(loss {mf_losses[0]:.4f} -> {mf_losses[-1]:.4f}){hf_notes}  [{time.time() - t0:.1f}s]")


def main():
    with tempfile.TemporaryDirectory() as root:
        corpus, tok = make_data(root)
        for case in CASES:
            try:
                run_case(root, corpus, tok, case)
            except Exception as e:  # noqa: BLE001 (report every case)
                failures.append(f"{case[0]}: {type(e).__name__}: {e}")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
