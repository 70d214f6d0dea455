"""`make demo`: the main job on the embedded default (data/base, a small dense Llama-style model
pretrained by tools/make_base.sh, and the corpus in data/corpus), as a controlled experiment of
`moeforge pipeline` jobs, repeated for several seeds (data order, surgery noise, validation split):

1. Sparse Upcycling: the upcycled 8-expert top-2 MoE against two dense controls, the dense base
   trained for the same steps and the dense base trained for the same training FLOPs (the MoE's
   top-2 of FFN-wide experts cost more per token; the ratio is computed from the configs);
2. expert extension: router stats of each MoE, grow by the clones its plan chooses, a shared
   expert, the three-phase recipe; against a control that trains the un-grown MoE for the same
   extra steps.

It prints each arm's validation loss as mean +- sd over seeds, the paired differences (same seed,
same validation blocks) with a paired t test, and says "no significant difference" when that is
what the numbers show; experts the router all but dropped (below half the uniform share) are
named. Every number printed is measured in this run; everything lands in out/demo (a report.html
per job). Two jobs run at a time, one thread each (faster than one job on two threads here).

    .venv/bin/python tools/demo.py --moeforge build/moeforge [--work out/demo] [--seeds 3] [--steps 250]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOW_USAGE = 0.5  # experts below this fraction of the uniform share are flagged (as in report.html)
# Two-sided 95 % critical values of Student's t by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
EVAL = {"block_size": 128, "max_blocks": 96, "validation_fraction": 0.05}
UPCYCLE = {"experts": 8, "top_k": 2, "to": "mixtral"}


# ---------------------------------------------------------------- recipes and FLOPs

def load(path):
    with open(path) as f:
        return json.load(f)


def dump(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
    return path


def scaled(recipe, total_steps, seed):
    """`recipe` with its phases' steps scaled to `total_steps` in all, the seed set, one thread."""
    recipe = json.loads(json.dumps(recipe))
    steps = [p["steps"] for p in recipe["phases"]]
    scale = total_steps / sum(steps)
    for phase in recipe["phases"]:
        phase["steps"] = max(1, round(phase["steps"] * scale))
    recipe["seed"] = seed
    recipe["threads"] = 1
    return recipe


def control_of(extension):
    """The extension recipe for the un-grown MoE: same phases, steps, learning rates and losses; what
    the grown model trains as new experts / shared expert the control trains as its own experts,
    and nothing is force-routed (it has no new experts)."""
    control = json.loads(json.dumps(extension))
    control["name"] = extension.get("name", "extension") + "-control"
    for phase in control["phases"]:
        select = [s for s in phase["select"] if s not in ("new_experts", "shared_expert")]
        if len(select) != len(phase["select"]) and "experts" not in select:
            select.insert(0, "experts")
        phase["select"] = select
        phase.pop("routing", None)
    return control


def forward_flops_per_token(config, seq_len, experts=0, top_k=0):
    """Matmul FLOPs of one token's forward pass: 2 x the weights it multiplies (attention, the FFN or
    its top-k experts and the router, the LM head) + causal attention scores (2 x seq x width)."""
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim") or h // heads
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    ffn = 3 * h * inter
    per_layer = attn + (top_k * ffn + h * experts if experts else ffn)
    return 2 * (layers * per_layer + config["vocab_size"] * h) + layers * 2 * seq_len * heads * head_dim


# ---------------------------------------------------------------- running jobs two at a time

class Job:
    def __init__(self, name, out, job, after=None):
        self.name, self.out, self.job, self.after = name, out, job, after
        self.proc, self.log, self.start, self.result = None, None, None, None


def run_jobs(mf, jobs, workers):
    """Runs `moeforge pipeline` for every job, at most `workers` at a time, each after the job it
    depends on; exits naming the job (and its log) when one fails."""
    env = dict(os.environ)
    if workers > 1:
        env["OMP_NUM_THREADS"] = "1"  # eval and stats threads; training's come from the recipe
    pending, running, done = list(jobs), [], {}
    while pending or running:
        for job in list(pending):
            if len(running) >= workers:
                break
            if job.after and job.after.name not in done:
                continue
            if callable(job.job):
                job.job = job.job()
            os.makedirs(os.path.dirname(job.out), exist_ok=True)
            spec = dump(job.out + ".json", job.job)
            job.log = job.out + ".log"
            job.start = time.time()
            with open(job.log, "w") as log:
                job.proc = subprocess.Popen([mf, "pipeline", spec, "--out", job.out, "--no-progress"], stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
            pending.remove(job)
            running.append(job)
        time.sleep(0.2)
        for job in list(running):
            code = job.proc.poll()
            if code is None:
                continue
            running.remove(job)
            if code != 0:
                for other in running:
                    other.proc.terminate()
                with open(job.log) as f:
                    tail = f.read().strip().splitlines()[-8:]
                sys.exit(f"demo: job '{job.name}' failed (exit {code}); its log {job.log} ends:\n  " + "\n  ".join(tail) +
                         "\nre-run `make demo` to resume")
            job.result = {m["label"]: m for m in load(os.path.join(job.out, "eval.json"))["models"]}
            done[job.name] = job
            print(f"  done {job.name:22s} {time.time() - job.start:5.0f}s  loss {job.result['trained']['loss']:.4f}",
                  flush=True)
    return done


# ---------------------------------------------------------------- statistics and printing

def mean_sd(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd


def verdict(a_name, b_name, diffs):
    """One line on mean(a - b) over paired seeds: the difference, its 95 % interval and what it supports."""
    n = len(diffs)
    mean, sd = mean_sd(diffs)
    if n < 2:
        return f"{a_name} - {b_name}: {mean:+.4f} nats (one seed: no significance test)"
    half = T95.get(n - 1, 1.96) * sd / math.sqrt(n)
    t = mean / (sd / math.sqrt(n)) if sd > 0 else math.copysign(math.inf, mean)
    text = f"{a_name} - {b_name}: {mean:+.4f} +- {sd:.4f} nats (95 % CI {mean - half:+.4f} .. {mean + half:+.4f}, paired t {t:+.2f}, {n} seeds): "
    if abs(t) <= T95.get(n - 1, 1.96):
        return text + "no significant difference"
    return text + f"{a_name if mean < 0 else b_name} is better (significant at 95 %)"


def usage_shares(result):
    """[(layer, [share per expert])] of a trained model's eval expert usage."""
    out = []
    for layer in result.get("expert_usage", []):
        total = sum(layer["counts"]) or 1
        out.append((layer["layer"], [c / total for c in layer["counts"]]))
    return out


def low_usage(result, only=None):
    """'L0:E8 1.2%, ...' of experts below LOW_USAGE x uniform; `only` = {layer: {experts}} to look at."""
    flagged, looked = [], 0
    for layer, shares in usage_shares(result):
        for e, share in enumerate(shares):
            if only is not None and e not in only.get(layer, ()):
                continue
            looked += 1
            if share < LOW_USAGE / len(shares):
                flagged.append(f"L{layer}:E{e} {100 * share:.1f}%")
    return flagged, looked


def new_experts(grown_job):
    """{layer: {expert indices}} grow added, from moeforge_grow.json in the grown model."""
    path = os.path.join(grown_job.out, "grown", "moeforge_grow.json")
    if not os.path.exists(path):
        return {}
    layers = load(path).get("layers", {})
    return {int(l): {e["index"] if isinstance(e, dict) else e for e in v} for l, v in layers.items()}


def print_arms(title, arms, seeds, extra=None):
    print(f"\n{title}")
    domains = sorted(arms[0][1][0].result["trained"].get("domains", {}))
    header = f"{'arm':34s} {'steps':>6s} {'FLOPs':>6s} {'loss (mean +- sd)':>19s}"
    print(header + "".join(f" {d[:10]:>10s}" for d in domains))
    for name, jobs, steps, flops in arms:
        mean, sd = mean_sd([j.result["trained"]["loss"] for j in jobs])
        row = f"{name:34s} {steps:6d} {'-' if flops is None else f'{flops:.2f}x':>6s} {mean:10.4f} +- {sd:.4f}"
        for d in domains:
            row += f" {mean_sd([j.result['trained']['domains'][d]['loss'] for j in jobs])[0]:10.4f}"
        print(row)
    if extra:
        print(extra)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moeforge", default="build/moeforge")
    parser.add_argument("--work", default="out/demo")
    parser.add_argument("--seeds", type=int, default=3, help="repeats of every arm (seeds 0..N-1)")
    parser.add_argument("--steps", type=int, default=250, help="training steps of the MoE and the steps-matched dense")
    parser.add_argument("--extension-steps", type=int, default=115, help="extra steps of the grown MoE and its control")
    parser.add_argument("--workers", type=int, default=2, help="pipeline jobs at a time")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming out/demo")
    args = parser.parse_args()
    mf = os.path.abspath(args.moeforge)
    work = os.path.abspath(args.work)
    base = os.path.join(ROOT, "data", "base")
    corpus = os.path.join(ROOT, "data", "corpus")
    if not os.path.exists(os.path.join(base, "config.json")):
        sys.exit(f"demo: {base} is missing; rebuild it with tools/make_base.sh")
    if args.seeds < 1 or args.steps < 1 or args.extension_steps < 1:
        sys.exit("demo: --seeds, --steps and --extension-steps must be >= 1")
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    continue_recipe = load(os.path.join(ROOT, "recipes", "demo-continue.json"))
    extension_recipe = load(os.path.join(ROOT, "recipes", "demo-expert-extension.json"))
    seq_len = continue_recipe["defaults"]["seq_len"]
    config = load(os.path.join(base, "config.json"))
    ratio = forward_flops_per_token(config, seq_len, UPCYCLE["experts"], UPCYCLE["top_k"]) / forward_flops_per_token(config, seq_len)
    flops_steps = round(args.steps * ratio)
    seeds = list(range(args.seeds))
    print(f"demo: {args.seeds} seeds; the upcycled MoE ({UPCYCLE['experts']} experts, top-{UPCYCLE['top_k']}) costs "
          f"{ratio:.2f}x the dense model's FLOPs per token, so the FLOPs-matched dense control trains "
          f"{flops_steps} steps to the MoE's {args.steps}", flush=True)

    jobs, by_seed = [], {}
    for s in seeds:
        d = os.path.join(work, f"seed{s}")
        rec = lambda steps, r=continue_recipe, s=s: scaled(r, steps, s)  # noqa: E731
        moe = Job(f"seed{s}/moe", os.path.join(d, "moe"),
                  {"base": base, "data": corpus, "seed": s, "surgery": {"upcycle": UPCYCLE}, "recipe": rec(args.steps),
                   "eval": EVAL, "model_name": "demo-upcycled-moe"})
        dense = Job(f"seed{s}/dense", os.path.join(d, "dense"),
                    {"base": base, "data": corpus, "seed": s, "recipe": rec(args.steps), "eval": EVAL,
                     "model_name": "demo-dense-steps-matched"})
        dense_flops = Job(f"seed{s}/dense-flops", os.path.join(d, "dense_flops"),
                          {"base": base, "data": corpus, "seed": s, "recipe": rec(flops_steps), "eval": EVAL,
                           "model_name": "demo-dense-flops-matched"})
        moe_export = os.path.join(moe.out, "export")
        grown = Job(f"seed{s}/grown", os.path.join(d, "grown"),
                    {"base": moe_export, "data": corpus, "seed": s, "stats": {"tokens": 16000, "block_size": 128},
                     "analyze": {"num_new": 2},
                     "surgery": {"grow": {"clone": "plan"}, "shared_expert": {"init": "mean", "scale": 0.2}},
                     "recipe": scaled(extension_recipe, args.extension_steps, s), "eval": EVAL,
                     "model_name": "demo-grown-moe"}, after=moe)
        control = Job(f"seed{s}/ungrown-control", os.path.join(d, "ungrown_control"),
                      {"base": moe_export, "data": corpus, "seed": s,
                       "recipe": scaled(control_of(extension_recipe), args.extension_steps, s), "eval": EVAL,
                       "model_name": "demo-ungrown-control"}, after=moe)
        by_seed[s] = {"moe": moe, "dense": dense, "dense_flops": dense_flops, "grown": grown, "control": control}
    # The MoEs first, so the extension jobs that wait on them can fill the second worker early.
    for key in ("moe", "grown", "control", "dense", "dense_flops"):
        jobs += [by_seed[s][key] for s in seeds]
    print(f"running {len(jobs)} pipeline jobs, {args.workers} at a time (logs beside each job in {work})", flush=True)
    run_jobs(mf, jobs, args.workers)

    arm = lambda key: [by_seed[s][key] for s in seeds]  # noqa: E731
    loss = lambda key: [j.result["trained"]["loss"] for j in arm(key)]  # noqa: E731
    ext = sum(p["steps"] for p in scaled(extension_recipe, args.extension_steps, 0)["phases"])
    base_loss = mean_sd([j.result["base"]["loss"] for j in arm("dense")])[0]
    print_arms(f"Sparse Upcycling: validation loss (nats/token) of each arm; the dense base scores {base_loss:.4f}",
               [("dense, steps-matched", arm("dense"), args.steps, 1.0),
                ("dense, FLOPs-matched", arm("dense_flops"), flops_steps, flops_steps / args.steps),
                (f"upcycled MoE ({UPCYCLE['experts']}x top-{UPCYCLE['top_k']})", arm("moe"), args.steps, ratio)], seeds)
    moe_loss = loss("moe")
    print(verdict("MoE", "dense (steps-matched)", [m - d for m, d in zip(moe_loss, loss("dense"))]))
    print(verdict("MoE", "dense (FLOPs-matched)", [m - d for m, d in zip(moe_loss, loss("dense_flops"))]))
    balance = mean_sd([j.result["trained"]["balance_score"] for j in arm("moe")])
    print(f"MoE balance score {balance[0]:.3f} +- {balance[1]:.3f} (1 = uniform expert use)")
    for j in arm("moe"):
        flagged, looked = low_usage(j.result["trained"])
        print(f"  {j.name}: {len(flagged)} of {looked} experts below half the uniform share"
              + (": " + ", ".join(flagged) if flagged else ""))

    print_arms(f"Expert extension: {ext} more steps from each seed's trained MoE",
               [("grown (+clones, +shared expert)", arm("grown"), ext, None),
                ("un-grown control", arm("control"), ext, None)], seeds)
    print(verdict("grown", "un-grown control", [g - c for g, c in zip(loss("grown"), loss("control"))]))
    print(verdict("grown", "its starting MoE", [g - m for g, m in zip(loss("grown"), moe_loss)]))
    for j in arm("grown"):
        clones = new_experts(j)
        flagged, looked = low_usage(j.result["trained"], clones or None)
        what = "clones" if clones else "experts"
        print(f"  {j.name}: {len(flagged)} of {looked} {what} below half the uniform share"
              + (": " + ", ".join(flagged) if flagged else ""))
    print(f"\ndemo finished in {time.time() - start:.0f}s; jobs, exports and report.html files are in {work}")


if __name__ == "__main__":
    main()
