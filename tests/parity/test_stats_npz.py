"""stats -> analyze on a tiny random Mixtral with a real tokenizer and Brown-corpus domains:
router_probs.npz opens with NumPy (shapes, metadata, fp16, rows sum to 1) and equals the
safetensors dump; stats.json agrees with the dump; analyze writes a plan that grow accepts, and a
plan for another model is rejected; one SVG figure renders to a non-trivial PNG (rsvg-convert)."""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats_helpers import brown_jsonl, init_moe, moeforge  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


with tempfile.TemporaryDirectory() as tmp:
    model = init_moe(os.path.join(tmp, "model"), {"hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
                                                  "num_attention_heads": 4, "num_key_value_heads": 2,
                                                  "num_local_experts": 8, "num_experts_per_tok": 2})
    data = brown_jsonl(os.path.join(tmp, "brown.jsonl"), genres="aj", files_per_genre=1)
    out = os.path.join(tmp, "stats")
    moeforge("stats", model, "--data", data, "--tokens", 3000, "--block-size", 128, "--out", out, "--dump-probs", "--quiet")
    stats = json.load(open(os.path.join(out, "stats.json")))
    z = np.load(os.path.join(out, "router_probs.npz"))
    probs = z["router_probs"]
    check(probs.dtype == np.float16, f"router_probs dtype {probs.dtype}")
    check(probs.shape == (3000, 2, 8), f"router_probs shape {probs.shape}")
    check(int(z["num_tokens"]) == 3000 and int(z["num_layers"]) == 2 and int(z["num_experts"]) == 8 and int(z["top_k"]) == 2,
          "npz scalar metadata")
    check(str(z["model_name"]) == "model", f"model_name {z['model_name']!r}")
    check(json.loads(str(z["metadata"]))["num_tokens"] == 3000, "metadata JSON")
    check(list(z["moe_layers"]) == [0, 1], "moe_layers")
    check(sorted(str(d) for d in z["domains"]) == ["a", "j"], f"domains {z['domains']}")
    check(np.abs(probs.astype(np.float64).sum(-1) - 1).max() < 5e-3, "probability rows sum to 1")
    st = load_file(os.path.join(out, "router_probs.safetensors"))
    check(np.array_equal(st["router_probs"], probs), "npz and safetensors dumps differ")
    check(np.array_equal(st["token_domain"], z["token_domain"]), "token_domain differs")
    check(stats["data"]["tokens"] == 3000, "stats tokens")
    for i, layer in enumerate(stats["layers"]):
        mean = probs[:, i, :].astype(np.float64).mean(0)
        check(np.abs(mean - np.array(layer["mean_prob"])).max() < 1e-3, f"layer {i} mean_prob vs dump")
        check(sum(layer["counts"]) == 3000 * 2, f"layer {i} counts sum")
        # Softmax-then-top-k: recount picks from the dump (fp16 may flip near ties: allow 1 %).
        top = np.argsort(-probs[:, i, :].astype(np.float32), axis=1, kind="stable")[:, :2]
        recount = np.bincount(top.ravel(), minlength=8)
        check(np.abs(recount - np.array(layer["counts"])).sum() <= 0.01 * 6000, f"layer {i} counts vs dump top-k")
        for d, name in enumerate(sorted(z["domains"])):
            dom = np.bincount(top[z["token_domain"] == d].ravel(), minlength=8)
            check(np.abs(dom - np.array(layer["domains"][str(name)]["counts"])).sum() <= 0.01 * 6000, "domain counts")

    plan_path = os.path.join(tmp, "plan.json")
    plots = os.path.join(tmp, "plots")
    _, table = moeforge("analyze", out, "--out", plan_path, "--format", "table", "--plots", plots)
    check("balance" in table and "clone" in table, f"table: {table}")
    plan = json.load(open(plan_path))
    check(plan["version"] == 1 and plan["model"]["num_experts"] == 8, "plan identity")
    check(set(plan["clone"]) == {"0", "1"} and len(set(map(len, plan["clone"].values()))) == 1, "clone lists")
    check(set(plan["esft"]["experts"]) == {"0", "1"}, "esft experts")
    moeforge("grow", model, "--plan", plan_path, "--out", os.path.join(tmp, "grown"))
    grown = json.load(open(os.path.join(tmp, "grown", "config.json")))
    check(grown["num_local_experts"] == 8 + len(plan["clone"]["0"]), "grow applied the plan")
    other = init_moe(os.path.join(tmp, "other"), {"hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
                                                  "num_attention_heads": 4, "num_key_value_heads": 2,
                                                  "num_local_experts": 4, "num_experts_per_tok": 2})
    rc, text = moeforge("grow", other, "--plan", plan_path, "--out", os.path.join(tmp, "bad"), expect_ok=False)
    check(rc != 0 and "different model" in text and "\n" not in text.strip(), f"grow accepted a foreign plan: {text}")

    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        print("note: rsvg-convert not found (apt-get install librsvg2-bin); figure not rendered")
    else:
        import subprocess
        from PIL import Image
        png = os.path.join(tmp, "usage.png")
        subprocess.run([rsvg, "-o", png, os.path.join(plots, "usage_heatmap.svg")], check=True)
        img = np.asarray(Image.open(png).convert("RGB"))
        colours = len(np.unique(img.reshape(-1, 3), axis=0))
        non_white = float((img.sum(-1) < 700).mean())
        check(img.shape[0] > 100 and img.shape[1] > 200, f"png size {img.shape}")
        check(colours > 8 and non_white > 0.05, f"png looks empty: {colours} colours, {non_white:.3f} non-white")
        if os.environ.get("MOEFORGE_KEEP_PLOTS"):
            shutil.copytree(plots, os.environ["MOEFORGE_KEEP_PLOTS"], dirs_exist_ok=True)
            shutil.copy(png, os.environ["MOEFORGE_KEEP_PLOTS"])

for f in failures:
    print("FAIL:", f)
print("stats parity:", "ok" if not failures else f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
