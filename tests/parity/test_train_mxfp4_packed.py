"""Training an MXFP4 GPT-OSS model with its frozen experts packed (the default of `train`; `--dequantize`
loads every expert dense, the old behaviour). A grown MXFP4 model (two clones per layer) trains its new
experts + router, then an old expert + norms, then LoRA on the new experts, in fp32:
- packed and dequantised runs give the same losses and gradient norms (1e-5 relative) and the same
  trained router and norms (1e-5), and byte-identical PEFT adapters;
- the packed run's trainable.safetensors is MXFP4 like its base: untouched experts' blocks/scales
  byte-identical to the base's, the trained experts' blocks those of quantising the dequantised run's
  trained weights (all but a few rounding ties), biases the dequantised run's within bf16;
- merge-deltas of the packed run into the base writes an MXFP4 checkpoint that transformers loads and
  runs with the logits of `moeforge forward` (1e-5 relative);
- a packed run stopped after 3 steps and resumed writes the uninterrupted run's trainable.safetensors
  byte for byte;
- a shared expert added to the MXFP4 model trains beside its packed experts as it does beside dense ones;
- --dump-steps with trained packed experts is refused in one line, naming --dequantize;
- expert parallel over 2 ranks (packed experts, a rank that receives no rows) equals one process;
- --zero 3 over two machines (two ranks launched as torchrun launches one per node: no shared page
  cache) splits the packed experts too, trains bit for bit as --zero 3 on one machine (2 ranks, the
  packed experts whole), and as --zero 2 on the same machines (1e-6: the
  recompute's first pass takes the forward-only kernels, GPT-OSS's fused sink attention among them,
  so the values agree to rounding, not bit for bit).
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import torch
import transformers
from safetensors.torch import load_file

from families import build_tiny_model, mxfp4_dequantize, mxfp4_quantize, quantize_gpt_oss_mxfp4
from moeforge_cli import BIN, finish, moeforge, run_moeforge
from small_tokenizer import TEXT, save_small_tokenizer

torch.set_num_threads(2)
IDS = [3, 17, 250, 9, 41, 77, 120, 5, 199, 64, 12, 230, 33, 81, 7, 150]
RECIPE = {
    "seed": 4, "threads": 1, "log_every": 1, "checkpoint_every": 1,
    "defaults": {"batch_size": 2, "seq_len": 16, "optimizer": {"lr": 1e-2}},
    "phases": [
        {"name": "new", "steps": 3, "select": ["new_experts", "router"], "routing": {"force_route": "selected"}},
        {"name": "old", "steps": 2, "select": "experts=0:1 + norms"},
        {"name": "lora", "steps": 2, "select": "new_experts", "method": "lora", "lora": {"rank": 2},
         "routing": {"force_route": "selected"}},
    ],
}


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [(r["step"], r["loss"], r["grad_norm"]) for r in map(json.loads, f)]


def train(model, data, recipe_path, out, *extra):
    return moeforge("train", model, "--data", data, "--recipe", recipe_path, "--out", out, "--no-progress", *extra)


def relative(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12)).item()


def check_losses(packed, dense, label, failures, pair="packed vs dequantised", tolerance=1e-5):
    a, b = metrics(packed), metrics(dense)
    if [s for s, _, _ in a] != [s for s, _, _ in b]:
        failures.append(f"{label}: steps {a} vs {b}")
        return
    worst = max(abs(x - y) / max(abs(y), 1e-12) for (_, l1, g1), (_, l2, g2) in zip(a, b) for x, y in ((l1, l2), (g1, g2)))
    print(f"  {label}: losses and grad norms {pair} within {worst:.2g} relative")
    if worst > tolerance:
        failures.append(f"{label}: losses/grad norms differ by {worst:.3g} relative: {a} vs {b}")


def check_trainable(base_dir, packed_run, dense_run, failures):
    base = load_file(os.path.join(base_dir, "model.safetensors"))
    got = load_file(os.path.join(packed_run, "trainable.safetensors"))
    want = load_file(os.path.join(dense_run, "trainable.safetensors"))
    with open(os.path.join(base_dir, "moeforge_grow.json")) as f:
        grown = {int(layer): [c["index"] for c in clones] for layer, clones in json.load(f)["layers"].items()}
    for name, t in got.items():
        if t.dtype == torch.uint8 and base[name].shape != t.shape:
            failures.append(f"{name}: {tuple(t.shape)} in trainable, {tuple(base[name].shape)} in the base")
    for layer, new in grown.items():
        trained = set(new) | ({1} if layer == 0 else set())
        for proj in ("gate_up_proj", "down_proj"):
            prefix = f"model.layers.{layer}.mlp.experts.{proj}"
            blocks, scales = got.get(prefix + "_blocks"), got.get(prefix + "_scales")
            if blocks is None or scales is None or prefix not in want:
                failures.append(f"{prefix}: packed run wrote {sorted(k for k in got if k.startswith(prefix))}, "
                                f"dequantised run {sorted(k for k in want if k.startswith(prefix))}")
                continue
            for e in range(blocks.shape[0]):
                if e in trained:
                    continue
                if not (torch.equal(blocks[e], base[prefix + "_blocks"][e]) and torch.equal(scales[e], base[prefix + "_scales"][e])):
                    failures.append(f"{prefix}: untouched expert {e} is not byte-identical to the base")
            # The dequantised run's trained experts ([E, in, out] as GPT-OSS stores them), quantised here.
            for e in sorted(trained):
                want_blocks, want_scales = mxfp4_quantize(want[prefix][e].transpose(0, 1))
                got_values = mxfp4_dequantize(blocks[e], scales[e])
                want_values = mxfp4_dequantize(want_blocks, want_scales)
                agree = (got_values == want_values).float().mean().item()
                if agree < 0.995:
                    failures.append(f"{prefix} expert {e}: only {agree:.4f} of the MXFP4 values equal quantising the dense run's")
            bias = f"{prefix}_bias"
            if bias in want and (bias not in got or relative(got[bias].float(), want[bias].float()) > 1e-2):
                failures.append(f"{bias}: packed run's bf16 bias is not the dequantised run's")
        router = f"model.layers.{layer}.mlp.router.weight"
        if router not in got or relative(got[router], want[router]) > 1e-5:
            failures.append(f"{router}: packed vs dequantised run differ")
    print(f"  trainable.safetensors: {len(got)} tensors (MXFP4 layers), untouched experts byte-identical")


def check_merge(work, base_dir, packed_run, failures):
    merged = os.path.join(work, "merged")
    moeforge("merge-deltas", base_dir, packed_run, "--out", merged)
    with open(os.path.join(merged, "config.json")) as f:
        if json.load(f).get("quantization_config", {}).get("quant_method") != "mxfp4":
            failures.append("merged model lost its MXFP4 quantization_config")
    tensors = load_file(os.path.join(merged, "model.safetensors"))
    trained = load_file(os.path.join(packed_run, "trainable.safetensors"))
    for name, t in trained.items():
        if t.dtype == torch.uint8 and not torch.equal(tensors[name], t):
            failures.append(f"merged {name} is not the run's MXFP4 bytes")
    model = transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    with torch.no_grad():
        want = model(torch.tensor([IDS])).logits[0]
    out = os.path.join(work, "merged_forward.safetensors")
    moeforge("forward", merged, "--ids", ",".join(map(str, IDS)), "--out", out, "--dtype", "fp32")
    got = load_file(out)["logits"].reshape(want.shape)
    rel = relative(got, want)
    print(f"  merged MXFP4 model: transformers vs moeforge forward logits {rel:.2g} relative")
    if rel > 1e-5:
        failures.append(f"merged model: transformers' logits differ from moeforge's by {rel:.3g} relative")


def check_resume(work, model, data, recipe_path, full_run, failures):
    run = os.path.join(work, "stopped")
    train(model, data, recipe_path, run, "--stop-after-steps", "3")
    moeforge("train", "--resume", run, "--no-progress")
    with open(os.path.join(run, "trainable.safetensors"), "rb") as a, open(os.path.join(full_run, "trainable.safetensors"), "rb") as b:
        if a.read() != b.read():
            failures.append("packed run stopped after 3 steps and resumed: trainable.safetensors differs from the uninterrupted run's")


def check_shared_expert(work, model, data, failures):
    shared = os.path.join(work, "shared")
    moeforge("add-shared-expert", model, "--out", shared)
    recipe = dict(RECIPE, phases=[{"name": "shared", "steps": 3, "select": "shared_expert"}])
    recipe_path = os.path.join(work, "shared_recipe.json")
    with open(recipe_path, "w") as f:
        json.dump(recipe, f)
    runs = {}
    for mode, extra in (("packed", []), ("dense", ["--dequantize"])):
        runs[mode] = os.path.join(work, f"shared_{mode}")
        train(shared, data, recipe_path, runs[mode], *extra)
    check_losses(runs["packed"], runs["dense"], "shared expert", failures)
    a, b = (load_file(os.path.join(runs[m], "trainable.safetensors")) for m in ("packed", "dense"))
    if a.keys() != b.keys() or any(relative(a[k], b[k]) > 1e-5 for k in a):
        failures.append("shared expert: packed and dequantised runs trained other values")


def check_expert_parallel(work, model, data, failures):
    """--nproc 2 --expert-parallel on the packed model equals one process on the same global batch. The
    new experts (forced routing) all belong to rank 1, so rank 0 receives no rows in that phase."""
    runs = {}
    for label, accum, extra in (("one", 2, []), ("ep", 1, ["--nproc", "2", "--expert-parallel"])):
        # Adam's eps 1e-6: a gradient that cancels to ~1e-9 must not turn rounding into an lr-sized step
        defaults = dict(RECIPE["defaults"], grad_accum=accum, optimizer=dict(RECIPE["defaults"]["optimizer"], eps=1e-6))
        path = os.path.join(work, f"ep_recipe_{label}.json")
        with open(path, "w") as f:
            json.dump(dict(RECIPE, defaults=defaults), f)
        runs[label] = os.path.join(work, f"ep_{label}")
        train(model, data, path, runs[label], *extra)
    check_losses(runs["ep"], runs["one"], "--expert-parallel", failures, pair="2 ranks vs 1 process")
    a, b = (load_file(os.path.join(runs[m], "trainable.safetensors")) for m in ("ep", "one"))
    floats = [k for k in b if b[k].is_floating_point()]
    worst = max(relative(a[k], b[k]) for k in floats)
    # the trained experts are re-quantised to MXFP4: a rounding tie may flip a code
    codes = sum(int((a[k] != b[k]).sum()) for k in b if not b[k].is_floating_point())
    total = sum(b[k].numel() for k in b if not b[k].is_floating_point())
    print(f"  --expert-parallel: trained float tensors within {worst:.2g} relative; {codes} of {total} MXFP4 codes differ")
    if a.keys() != b.keys() or worst > 1e-4 or codes > total // 1000:
        failures.append(f"--expert-parallel: trained tensors differ from one process ({worst:.3g} relative, {codes} codes)")


def as_machines(args, machines=2):
    """`moeforge ARGS` as one rank on each of `machines` nodes (the variables torchrun sets per node:
    LOCAL_WORLD_SIZE 1, rank 0 serving the store); returns rank 0's stderr, or raises naming the rank."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(machines):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(machines), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                   GROUP_RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        env.pop("TORCHELASTIC_USE_AGENT_STORE", None)
        procs.append(subprocess.Popen([BIN, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for r, p in enumerate(procs):
        if p.returncode != 0:
            raise RuntimeError(f"rank {r} of {machines} machines exited {p.returncode}: {outputs[r][1].strip()[-600:]}")
    return outputs[0][1]


def split_at_load(model):
    """Bytes `--zero 3` splits as it loads an fp32 run of `model` when packed experts split too: every
    float matrix but the routers and the experts' biases (as fp32), and the packed blocks and scales (as stored)."""
    from safetensors import safe_open
    total = 0
    with safe_open(os.path.join(model, "model.safetensors"), "pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            if k.endswith("_blocks") or k.endswith("_scales"):
                total += t.numel() * t.element_size()
            elif t.is_floating_point() and t.dim() == 2 and "router" not in k and not k.endswith("_bias"):
                total += t.numel() * 4
    return total


def check_zero3_over_machines(work, model, data, failures):
    # No LoRA (--zero 3 refuses it); Adam's eps 1e-6 as for expert parallel: rounding-level gradient
    # differences where a gradient cancels must not become lr-sized steps.
    defaults = dict(RECIPE["defaults"], optimizer=dict(RECIPE["defaults"]["optimizer"], eps=1e-6))
    recipe = dict(RECIPE, defaults=defaults, phases=RECIPE["phases"][:2])
    path = os.path.join(work, "zero3_recipe.json")
    with open(path, "w") as f:
        json.dump(recipe, f)
    runs, notes = {}, {}
    for zero in ("2", "3"):
        runs[zero] = os.path.join(work, f"machines_zero{zero}")
        notes[zero] = as_machines(["train", model, "--data", data, "--recipe", path, "--out", runs[zero], "--no-progress",
                                   "--zero", zero])
    # The same run on one machine keeps the packed experts whole (mapped once): splitting them is exact.
    one_machine = os.path.join(work, "one_machine_zero3")
    train(model, data, path, one_machine, "--nproc", "2", "--zero", "3")
    with open(os.path.join(runs["3"], "trainable.safetensors"), "rb") as a, open(os.path.join(one_machine, "trainable.safetensors"), "rb") as b:
        if a.read() != b.read() or metrics(runs["3"]) != metrics(one_machine):
            failures.append("--zero 3: split packed experts (2 machines) train otherwise than whole ones (1 machine, 2 ranks)")
    check_losses(runs["3"], runs["2"], "--zero 3 over 2 machines", failures, pair="vs --zero 2", tolerance=1e-6)
    a, b = (load_file(os.path.join(runs[z], "trainable.safetensors")) for z in ("3", "2"))
    worst, name = max((relative(a[k], b[k]), k) for k in b if b[k].is_floating_point())
    codes = sum(int((a[k] != b[k]).sum()) for k in b if not b[k].is_floating_point())
    total = sum(b[k].numel() for k in b if not b[k].is_floating_point())
    if a.keys() != b.keys() or worst > 1e-5 or codes > total // 1000:
        failures.append(f"--zero 3 over 2 machines: trained tensors differ from --zero 2's ({worst:.3g} relative at {name}, {codes} codes)")
    split = re.search(r"ZeRO-3: frozen weights of ([\d.]+) (\w+) split over 2 ranks \(([\d.]+) (\w+) on each\)", notes["3"])
    want = split_at_load(model)
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    if not split:
        failures.append(f"--zero 3 over 2 machines: rank 0 did not say what it split: {notes['3'].strip()[-300:]}")
        return
    whole = float(split.group(1)) * units[split.group(2)]
    print(f"  --zero 3 over 2 machines: {split.group(0)} (the file's matrices but the routers, packed experts included: "
          f"{want} B); trained float tensors within {worst:.2g} of --zero 2's, {codes} of {total} MXFP4 codes differ")
    if abs(whole - want) > 0.005 * want:
        failures.append(f"--zero 3 over 2 machines: split {whole:.0f} B at load; with the packed experts it should be {want} B")


def check_dump_refused(work, model, data, recipe_path, failures):
    out = os.path.join(work, "dump_run")
    r = run_moeforge("train", model, "--data", data, "--recipe", recipe_path, "--out", out, "--no-progress", "--dump-steps", "1",
                     check=False)
    lines = r.stderr.strip().splitlines()
    if r.returncode != 1 or len(lines) != 1 or "--dequantize" not in lines[0]:
        failures.append(f"--dump-steps on packed trained experts: exit {r.returncode}, {r.stderr.strip()[-300:]}")


def main():
    start = time.time()
    failures = []
    work = tempfile.mkdtemp(prefix="moeforge_mxfp4_train_")
    try:
        source = os.path.join(work, "gpt_oss")
        build_tiny_model("gpt_oss", source)
        quantize_gpt_oss_mxfp4(source)
        save_small_tokenizer(source)
        with open(os.path.join(source, "tokenizer_config.json"), "w") as f:
            json.dump({"eos_token": "<|endoftext|>"}, f)
        grown = os.path.join(work, "grown")
        moeforge("grow", source, "--clone", "*:0,*:2", "--out", grown)
        data = os.path.join(work, "data.txt")
        with open(data, "w") as f:
            f.write("\n".join([TEXT] * 60) + "\n")
        recipe_path = os.path.join(work, "recipe.json")
        with open(recipe_path, "w") as f:
            json.dump(RECIPE, f)
        packed, dense = os.path.join(work, "packed"), os.path.join(work, "dense")
        train(grown, data, recipe_path, packed)
        train(grown, data, recipe_path, dense, "--dequantize")
        check_losses(packed, dense, "new experts + old expert + LoRA", failures)
        with open(os.path.join(packed, "adapter_model.safetensors"), "rb") as a, open(os.path.join(dense, "adapter_model.safetensors"), "rb") as b:
            if a.read() != b.read():
                failures.append("the LoRA adapter of the new experts differs between the packed and the dequantised run")
        check_trainable(grown, packed, dense, failures)
        check_merge(work, grown, packed, failures)
        check_resume(work, grown, data, recipe_path, packed, failures)
        check_shared_expert(work, source, data, failures)
        check_dump_refused(work, grown, data, recipe_path, failures)
        check_expert_parallel(work, grown, data, failures)
        check_zero3_over_machines(work, grown, data, failures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_train_mxfp4_packed", failures, start, "MXFP4 models train with their frozen experts packed")


if __name__ == "__main__":
    sys.exit(main())
