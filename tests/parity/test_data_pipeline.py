"""Data pipeline parity: `moeforge data inspect --dump` packs exactly what Hugging Face produces.
Text records (JSONL, .txt, .jsonl.gz) must become the HF `tokenizers` ids of their text + EOS;
chat records (Qwen3's template, rendered by transformers) must become the ids of the rendered
conversation with loss mask 1 exactly on the assistant spans (reply + end-of-turn, found by
rendering conversation prefixes) . Also: bad records reported with file:line, --strict fatal.
Env: MOEFORGE_BIN, MOEFORGE_SHARED_DATA (default: the in-repo data/testdata.tar.xz)."""
import collections
import gzip
import json
import os
import sys
import tempfile

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from moeforge_cli import run_moeforge  # noqa: E402
from shared_data import shared_data_dir  # noqa: E402

SHARED = shared_data_dir()  # $MOEFORGE_SHARED_DATA, else the in-repo data/testdata.tar.xz
TOK_DIR = os.path.join(SHARED, "tokenizers", "qwen3")

CHATS = [
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
     {"role": "assistant", "content": "Red, naturally — or vermilion 🙂."}],
    [{"role": "user", "content": "def f(x): return x*2\nWhat does f(4) return?"},
     {"role": "assistant", "content": "It returns 8."}],
]


def run(*args, check=True):
    r = run_moeforge(*args, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"moeforge {' '.join(args)}: {r.stderr.strip()}")
    return r


def expected_chat(tok, hf, messages, eos):
    """Ids and mask by rendering prefixes with transformers (segments tokenised separately)."""
    full = tok.apply_chat_template(messages, tokenize=False)
    ids, mask, done = [], [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tok.apply_chat_template(messages[:i + 1], tokenize=False)
        if full.startswith(before) and full.startswith(through) and done <= len(before) <= len(through):
            start, end = len(before), len(through)
        else:  # Qwen3 renders the last turn with an empty <think> block: locate the reply instead
            reply = m["content"]
            end_of_turn = through[through.rfind(reply) + len(reply):]
            start = full.index(reply, done)
            end = start + len(reply)
            if full.startswith(end_of_turn, end):
                end += len(end_of_turn)
        for text, train in ((full[done:start], 0), (full[start:end], 1)):
            part = hf.encode(text, add_special_tokens=False).ids if text else []
            ids += part
            mask += [train] * len(part)
        done = end
    tail = hf.encode(full[done:], add_special_tokens=False).ids if done < len(full) else []
    return ids + tail + [eos], mask + [0] * len(tail) + [0]


def main():
    import transformers
    failures = []
    hf = Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))
    tok = transformers.AutoTokenizer.from_pretrained(TOK_DIR)
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    with gzip.open(os.path.join(ROOT, "data", "corpus", "math.jsonl.gz"), "rt", encoding="utf-8") as f:
        math = [json.loads(next(f)) for _ in range(150)]
    with gzip.open(os.path.join(ROOT, "data", "corpus", "code.jsonl.gz"), "rt", encoding="utf-8") as f:
        code = [json.loads(next(f)) for _ in range(30)]
    prose_lines = ["The quick brown fox.", "Ünïcode line with émojis 🙂 and  double  spaces", "  leading space"]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        with open(os.path.join(data, "math.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in math)
        with gzip.open(os.path.join(data, "code.jsonl.gz"), "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in code)
        with open(os.path.join(data, "prose.txt"), "w") as f:
            f.writelines(line + "\n" for line in prose_lines)
        with open(os.path.join(data, "chat.jsonl"), "w") as f:
            f.writelines(json.dumps({"messages": m, "domain": "chat"}) + "\n" for m in CHATS)
        dump = os.path.join(tmp, "blocks.jsonl")
        run("data", "inspect", "--data", data, "--tokenizer", TOK_DIR, "--block-size", "16384", "--packing",
            "per-document", "--validation-fraction", "0.1", "--cache-dir", os.path.join(tmp, "cache"), "--dump", dump)
        blocks = [json.loads(line) for line in open(dump)]

        expected = collections.Counter()
        for r in math + code:
            expected[(r["domain"], tuple(hf.encode(r["text"], add_special_tokens=False).ids + [eos]))] += 1
        for line in prose_lines:
            expected[("prose", tuple(hf.encode(line, add_special_tokens=False).ids + [eos]))] += 1
        chat_expected = {}
        for m in CHATS:
            ids, mask = expected_chat(tok, hf, m, eos)
            expected[("chat", tuple(ids))] += 1
            chat_expected[tuple(ids)] = mask
        got = collections.Counter((b["domain"], tuple(b["ids"])) for b in blocks)
        if got != expected:
            missing, extra = expected - got, got - expected
            failures.append(f"{len(missing)} expected documents missing, {len(extra)} unexpected "
                            f"(e.g. {list(extra)[:1]!s:.200})")
        for b in blocks:
            if b["domain"] == "chat":
                want = chat_expected.get(tuple(b["ids"]))
                if want is not None and want != b["mask"]:
                    failures.append(f"chat mask differs for block {b['split']}/{b['index']}")
            elif any(m != 1 for m in b["mask"]):
                failures.append(f"text block {b['split']}/{b['index']} has masked tokens")
        splits = collections.Counter(b["split"] for b in blocks)
        if splits["validation"] == 0:
            failures.append("no validation blocks")

        # Bad records: reported with file:line; --strict makes them fatal with one line.
        bad = os.path.join(tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"text": "fine"}\n{broken\n{"no_text": 1}\n{"text": "also fine"}\n')
        r = run("data", "prepare", "--data", bad, "--tokenizer", TOK_DIR, "--cache-dir", os.path.join(tmp, "cache"))
        if "2 bad records" not in r.stdout or "bad.jsonl:2: invalid JSON" not in r.stdout \
                or "bad.jsonl:3: missing field 'text'" not in r.stdout:
            failures.append(f"bad-record report: {r.stdout!r}")
        r = run("data", "prepare", "--data", bad, "--tokenizer", TOK_DIR, "--strict", "--cache-dir",
                os.path.join(tmp, "cache"), check=False)
        if r.returncode == 0 or "bad.jsonl:2: bad record: invalid JSON" not in r.stderr or r.stderr.count("\n") != 1:
            failures.append(f"strict: rc {r.returncode}, stderr {r.stderr!r}")
        print(f"data pipeline parity: {len(blocks)} blocks ({splits['train']} train, {splits['validation']} validation), "
              f"{sum(expected.values())} documents checked, {len(failures)} failures")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
