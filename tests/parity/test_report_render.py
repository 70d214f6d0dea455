"""`moeforge report` renders in a real browser: a synthetic run directory (two-phase metrics.jsonl,
stats before/after, eval.json) -> report.html -> headless Chromium. The screenshot is a non-blank
PNG, the browser logs no console message (the page has no script and a CSP that forbids fetches,
so any message means something is wrong; a control page proves messages are caught), and the DOM
holds every chart as inline SVG. Chromium is required (`make deps` installs it): absent -> FAIL.
Run by hand: MOEFORGE_BIN=build/moeforge .venv/bin/python tests/parity/test_report_render.py"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import run_moeforge  # noqa: E402

CHARTS = ["chart-loss", "chart-lr", "chart-aux", "chart-grad-norm", "chart-throughput", "chart-kl", "chart-drift",
          "chart-balance", "heatmap-before", "heatmap-after"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def make_run(run):
    """Files where the pipeline puts them: train/metrics.jsonl, stats_{before,after}/stats.json, eval.json."""
    os.makedirs(os.path.join(run, "train"))
    with open(os.path.join(run, "train", "metrics.jsonl"), "w") as f:
        step = 0
        for phase in ("experts_only", "router_finetune"):
            for s in range(1, 31):
                step += 1
                skew = 0.1 / step
                rec = {"step": step, "phase": phase, "phase_step": s, "loss": 4 / math.sqrt(step), "ce": 3.9 / math.sqrt(step),
                       "lb": 0.01, "z": 0.001, "lr": 1e-4 * min(1.0, s / 5), "grad_norm": 1 + 0.5 * math.sin(step),
                       "tokens": 2048, "tokens_per_s": 1500 + step, "balance": 0.9 + 0.001 * step,
                       "router_drift": 0.002 * step, "balance_per_layer": [0.9, 0.91],
                       "router_drift_per_layer": [0.001 * step, 0.003 * step], "lb_per_layer": [0.01, 0.01],
                       "load": [[0.25 + skew, 0.25 - skew, 0.25, 0.25], [0.4, 0.2, 0.2, 0.2]]}
                if phase == "router_finetune":
                    rec["kl"] = 0.05 / s
                f.write(json.dumps(rec) + "\n")
    for name, counts in (("stats_before", [[900, 300, 300, 300], [450, 450, 600, 300]]),
                         ("stats_after", [[460, 440, 560, 340], [500, 500, 520, 280]])):
        os.makedirs(os.path.join(run, name))
        layers = [{"layer": i, "counts": c, "usage": [x / sum(c) for x in c]} for i, c in enumerate(counts)]
        stats = {"format": "moeforge.router_stats", "version": 1,
                 "model": {"path": "m", "model_type": "mixtral", "num_layers": 2, "num_experts": 4, "hidden_size": 64, "top_k": 2},
                 "data": {"tokens": 3000}, "layers": layers}
        json.dump(stats, open(os.path.join(run, name, "stats.json"), "w"))
    json.dump({"loss": 2.345678, "perplexity": 10.4398, "tokens": 4096, "balance_score": 0.8765, "balanced_perplexity": 11.7654,
               "model": "out/trained", "baseline": {"loss": 2.1, "perplexity": 8.16617, "mean_kl": 0.0123, "model": "models/base"}},
              open(os.path.join(run, "eval.json"), "w"))


def png_pixels(path):
    """(width, height, rows of RGB tuples' flat bytes, channels) of an 8-bit RGB/RGBA PNG; zlib + struct only."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def chromium(browser, profile, *args):
    """Runs headless Chromium; returns (returncode, stdout, stderr)."""
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def console_lines(stderr):
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


browser = find_chromium()
if browser is None:
    print("FAIL: chromium not found on PATH; install it (`make deps`, or apt-get install chromium)")
    sys.exit(1)

with tempfile.TemporaryDirectory() as tmp:
    run = os.path.join(tmp, "demo_run")
    make_run(run)
    out = os.path.join(tmp, "report.html")
    r = run_moeforge("report", run, "--out", out, check=False)
    check(r.returncode == 0, f"moeforge report failed: {r.stdout + r.stderr}")
    check(os.path.isfile(out), "report.html not written")
    url = "file://" + out

    png = os.path.join(tmp, "shot.png")
    rc, _, err = chromium(browser, os.path.join(tmp, "p1"), f"--screenshot={png}", "--window-size=1200,2000", url)
    check(rc == 0 and os.path.isfile(png), f"screenshot failed (rc {rc}): {err[-2000:]}")
    check(not console_lines(err), f"console messages: {console_lines(err)}")
    if os.path.isfile(png):
        width, height, rows, bpp = png_pixels(png)
        check((width, height) == (1200, 2000), f"screenshot size {width}x{height}")
        non_white, colours = 0, set()
        for row in rows[::2]:  # every other row is plenty and halves the work
            for x in range(0, width * bpp, bpp * 2):
                px = row[x:x + 3]
                if sum(px) < 720:
                    non_white += 1
                colours.add(px)
        sampled = (height // 2) * (width // 2)
        check(non_white > 0.01 * sampled, f"screenshot nearly blank: {non_white} of {sampled} sampled pixels non-white")
        check(len(colours) > 20, f"screenshot has only {len(colours)} colours")

    rc, dom, err = chromium(browser, os.path.join(tmp, "p2"), "--dump-dom", url)
    check(rc == 0, f"--dump-dom failed (rc {rc}): {err[-2000:]}")
    check(not console_lines(err), f"console messages while dumping the DOM: {console_lines(err)}")
    check(dom.count("<svg") == len(CHARTS), f"DOM has {dom.count('<svg')} <svg> elements, expected {len(CHARTS)}")
    for chart in CHARTS:
        start = dom.find(f'id="{chart}"')
        check(start >= 0 and dom.find("<svg", start) < dom.find("</figure>", start), f"DOM: no svg chart {chart}")
    for text in ("experts_only", "router_finetune", "2.34568", "8.16617", "0.0123", "demo_run"):
        check(text in dom, f"DOM lacks {text!r}")
    check("not available" not in dom, "a section is 'not available' on a complete run")

    # Control: the same page plus an external image must produce a console message (CSP violation),
    # so a silent log above means a clean page, not a blind check.
    bad = os.path.join(tmp, "bad.html")
    html = open(out).read().replace("<body>", '<body><img src="http://example.invalid/x.png">', 1)
    open(bad, "w").write(html)
    rc, _, err = chromium(browser, os.path.join(tmp, "p3"), "--dump-dom", "file://" + bad)
    check(console_lines(err), "control page with a blocked fetch logged no console message: console capture is not working")

    # A malformed metrics line: one-line error naming the file and line, non-zero exit, no report.
    with open(os.path.join(run, "train", "metrics.jsonl"), "a") as f:
        f.write('{"step": 61, "loss": \n')
    bad_out = os.path.join(tmp, "bad_report.html")
    r = run_moeforge("report", run, "--out", bad_out, check=False)
    msg = r.stderr.strip()
    check(r.returncode != 0 and "metrics.jsonl:61" in msg and "\n" not in msg, f"malformed metrics: rc {r.returncode}, {msg!r}")
    check(not os.path.exists(bad_out) and not r.stdout, f"report written despite a malformed input: {r.stdout!r}")

for f in failures:
    print("FAIL:", f)
print("report render:", "ok" if not failures else f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
