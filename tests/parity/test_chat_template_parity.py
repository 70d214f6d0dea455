"""Parity: `moeforge chat-template --batch` must render every conversation byte-for-byte as
transformers' apply_chat_template(..., tokenize=False) does, and fail exactly where it fails.

Env: MOEFORGE_BIN (the moeforge binary), MOEFORGE_SHARED_DATA (a directory with tokenizers/*;
default: the in-repo data/testdata.tar.xz).
Optional: MOEFORGE_CHAT_TEMPLATES=DIR holding <name>.jinja for tokenizers whose shipped config lacks a
chat template (the shared GPT-OSS and Llama 2 configs have none); such tokenizers are otherwise skipped
with a note. strftime_now() is pinned to FIXED_NOW on both sides. Exit 0 = pass.
"""
import datetime
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import transformers.utils.chat_template_utils as ctu  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from chat_cases import cases  # noqa: E402
from moeforge_cli import run_moeforge  # noqa: E402
from shared_data import shared_data_dir  # noqa: E402

FIXED_NOW = datetime.datetime(2024, 8, 5, 9, 30, 15)
TOKENIZERS = ["gptoss", "llama3", "qwen3", "llama2"]


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


ctu.datetime = _FixedDatetime  # strftime_now() reads the module's `datetime`


def reference(tok, template, inputs):
    kwargs = {k: v for k, v in inputs.items() if k not in ("messages", "tools", "add_generation_prompt")}
    try:
        return tok.apply_chat_template(
            inputs["messages"],
            tools=inputs.get("tools"),
            add_generation_prompt=inputs.get("add_generation_prompt", False),
            tokenize=False,
            chat_template=template,
            **kwargs,
        ), None
    except Exception as e:  # template errors, TypeErrors from bad content, empty conversations
        return None, f"{type(e).__name__}: {e}"


def has_own_template(tok_dir):
    if os.path.exists(os.path.join(tok_dir, "chat_template.jinja")):
        return True
    with open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        return bool(json.load(f).get("chat_template"))


def main():
    shared = shared_data_dir()
    override_dir = os.environ.get("MOEFORGE_CHAT_TEMPLATES", "")
    start = time.time()
    total = passed = 0
    failures = []
    skipped = []
    for name in TOKENIZERS:
        tok_dir = os.path.join(shared, "tokenizers", name)
        template_file = None
        if not has_own_template(tok_dir):
            candidate = os.path.join(override_dir, f"{name}.jinja") if override_dir else ""
            if candidate and os.path.exists(candidate):
                template_file = candidate
            else:
                skipped.append(name)
                continue
        tok = AutoTokenizer.from_pretrained(tok_dir)
        template = open(template_file, encoding="utf-8").read() if template_file else None
        conversations = cases(name)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
            for _, inputs in conversations:
                f.write(json.dumps(inputs, ensure_ascii=False) + "\n")
            batch = f.name
        args = ["chat-template", "--tokenizer", tok_dir, "--batch", batch, "--now", FIXED_NOW.strftime("%Y-%m-%dT%H:%M:%S")]
        if template_file:
            args += ["--template", template_file]
        proc = run_moeforge(*args, check=False, encoding="utf-8")
        os.unlink(batch)
        if proc.returncode != 0:
            failures.append(f"{name}: moeforge exited {proc.returncode}: {proc.stderr.strip()}")
            continue
        lines = proc.stdout.splitlines()
        if len(lines) != len(conversations):
            failures.append(f"{name}: expected {len(conversations)} output lines, got {len(lines)}")
            continue
        ok_here = 0
        for (case, inputs), line in zip(conversations, lines):
            total += 1
            got = json.loads(line)
            want, want_error = reference(tok, template, inputs)
            if want_error is not None:
                if isinstance(got, dict) and "error" in got:
                    passed += 1
                    ok_here += 1
                else:
                    failures.append(f"{name}/{case}: transformers raised ({want_error}) but moeforge rendered {got!r}")
            elif isinstance(got, dict):
                failures.append(f"{name}/{case}: moeforge failed ({got['error']}) but transformers rendered {want!r}")
            elif got != want:
                at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                failures.append(f"{name}/{case}: mismatch at char {at}: moeforge {got[max(0, at-40):at+40]!r} vs transformers {want[max(0, at-40):at+40]!r}")
            else:
                passed += 1
                ok_here += 1
        print(f"  {name}: {ok_here}/{len(conversations)} identical" + (f" (template from {template_file})" if template_file else ""))
    for failure in failures:
        print("FAIL", failure)
    for name in skipped:
        print(f"NOTE {name}: tokenizer_config.json has no chat_template; set MOEFORGE_CHAT_TEMPLATES=DIR with {name}.jinja to test it")
    print(f"chat-template parity: {passed}/{total} conversations identical across {len(TOKENIZERS) - len(skipped)} templates "
          f"({len(skipped)} skipped) in {time.time() - start:.1f}s")
    return 0 if not failures and total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
