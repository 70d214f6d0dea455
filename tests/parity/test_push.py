"""`moeforge push DIR --repo org/name` hands the upload to the official client: with a stand-in `hf`
on PATH (which records its arguments and whether it saw a token, never the token), the arguments are
`hf upload org/name DIR . --repo-type model [--revision R] --private|--no-private --commit-message M`,
the token reaches the client only through the environment and is printed nowhere; a missing client,
a missing token, a bad repo id or a missing directory are one-line errors, exit 1, before anything
runs; a failing client (no network) is exit 1 naming the repo. A pipeline's export.push checks the
same before its first stage and uploads export/ after it. The real network upload is not run.
Exit 0 = pass. Env: MOEFORGE_BIN."""
import json
import os
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moeforge_cli import finish, run_moeforge  # noqa: E402

SECRET = "hf_TESTSECRETdonotprint123"
FAKE_HF = """#!/bin/sh
python3 - "$@" <<'PY'
import json, os, sys
json.dump({"argv": sys.argv[1:], "token_seen": bool(os.environ.get("HF_TOKEN"))}, open(os.environ["FAKE_HF_LOG"], "w"))
PY
exit ${FAKE_HF_EXIT:-0}
"""
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def main():
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "export")
        os.makedirs(model)
        with open(os.path.join(model, "config.json"), "w") as f:
            f.write("{}\n")
        fakebin = os.path.join(tmp, "bin")
        os.makedirs(fakebin)
        hf = os.path.join(fakebin, "hf")
        with open(hf, "w") as f:
            f.write(FAKE_HF)
        os.chmod(hf, os.stat(hf).st_mode | stat.S_IEXEC)
        log = os.path.join(tmp, "hf.json")
        base_env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
        base_env.update(HF_HOME=os.path.join(tmp, "hf_home"), FAKE_HF_LOG=log)
        env = dict(base_env, PATH=fakebin + os.pathsep + os.environ["PATH"], HF_TOKEN=SECRET)

        r = run_moeforge("push", model, "--repo", "acme/tiny-moe", "--revision", "v1", "--private", env=env, check=False)
        out = r.stdout + r.stderr
        check(r.returncode == 0, f"push: rc {r.returncode}: {out}")
        check(SECRET not in out, "the token was printed")
        got = json.load(open(log)) if os.path.exists(log) else {}
        want = ["upload", "acme/tiny-moe", model, ".", "--repo-type", "model", "--revision", "v1", "--private",
                "--commit-message", "Upload export with moeforge"]
        check(got.get("argv") == want, f"hf arguments {got.get('argv')}, want {want}")
        check(SECRET not in json.dumps(got.get("argv", [])), "the token was passed on the command line")
        check(got.get("token_seen") is True, "the client did not get HF_TOKEN from the environment")
        check("https://huggingface.co/acme/tiny-moe" in r.stdout, f"no link printed: {r.stdout}")

        def error(args, environment, message):
            if os.path.exists(log):
                os.remove(log)
            r = run_moeforge("push", *args, env=environment, check=False)
            check(r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) <= 2,
                  f"push {args}: rc {r.returncode}: {r.stderr.strip()}")
            return r

        r = error([model, "--repo", "acme/tiny-moe"], dict(base_env, PATH="/nonexistent", HF_TOKEN=SECRET), "`hf` is not on PATH")
        check(not os.path.exists(log), "the client ran although it was missing?")
        error([model, "--repo", "acme/tiny-moe"], dict(env, HF_TOKEN=""), "no Hugging Face token")
        check(not os.path.exists(log), "the client ran without a token")
        error([model, "--repo", "not a repo"], env, "is not a Hub repo id (org/name)")
        error([os.path.join(tmp, "missing"), "--repo", "acme/x"], env, "no such directory")
        r = error([model, "--repo", "acme/tiny-moe"], dict(env, FAKE_HF_EXIT="3"), "`hf upload` failed (exit 3)")
        check("acme/tiny-moe" in r.stderr and SECRET not in r.stdout + r.stderr, f"failure message: {r.stderr.strip()}")
        # A pipeline's export.push: checked before the first stage, run after the export.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        job = os.path.join(tmp, "job.json")
        with open(job, "w") as f:
            json.dump({"base": os.path.join(root, "data", "base"), "data": os.path.join(root, "data", "corpus"),
                       "eval": {"block_size": 32, "max_blocks": 4}, "report": False,
                       "export": {"push": {"repo": "acme/piped", "revision": "main"}}}, f)
        run = os.path.join(tmp, "run")
        r = run_moeforge("pipeline", job, "--out", run, "--no-progress", env=dict(env, HF_TOKEN=""), check=False)
        check(r.returncode == 1 and "export.push: no Hugging Face token" in r.stderr and not os.path.exists(os.path.join(run, "eval.json")),
              f"pipeline without a token: rc {r.returncode}: {r.stderr.strip()[-300:]}")
        if os.path.exists(log):
            os.remove(log)
        r = run_moeforge("pipeline", job, "--out", run, "--no-progress", env=env, check=False)
        got = json.load(open(log)) if os.path.exists(log) else {}
        check(r.returncode == 0 and got.get("argv", [])[:6] == ["upload", "acme/piped", os.path.join(run, "export"), ".",
                                                                 "--repo-type", "model"]
              and os.path.exists(os.path.join(run, "push.json")), f"pipeline push: rc {r.returncode}: {got} {r.stderr[-300:]}")
        check(SECRET not in r.stdout + r.stderr, "the pipeline printed the token")
    sys.exit(finish("push", failures, start, "hf upload arguments, token handling, errors, pipeline export.push"))


if __name__ == "__main__":
    main()
