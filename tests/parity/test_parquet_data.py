"""Parquet inputs (the Hugging Face datasets format): files written by pyarrow, in a dataset directory
laid out as the Hub does (data/train-0000x-of-0000N.parquet, small row groups so several are
streamed), with `text`, `messages` (list of structs) and `domain` columns in the types pyarrow
writes (string, large_string, list, large_list), must give `moeforge data inspect --dump` exactly
the documents (ids, loss masks, domains; per-document packing, compared as multisets because the
order is keyed by the file name) of the same rows written as JSONL. A single file, a
HF-cache dataset snapshot, and the errors (no text column; not Parquet) are checked too.
Skipped (exit 0 with a note) when the build has no Parquet support. Env: MOEFORGE_BIN,
MOEFORGE_SHARED_DATA."""
import gzip
import json
import os
import re
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from moeforge_cli import finish, run_moeforge  # noqa: E402
from shared_data import shared_data_dir  # noqa: E402

TOK_DIR = os.path.join(shared_data_dir(), "tokenizers", "qwen3")
CHATS = [
    [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue 🙂."}],
]


def rows():
    """Text rows with a domain, chat rows without (the file's stem is their domain), one row of neither."""
    with gzip.open(os.path.join(ROOT, "data", "corpus", "math.jsonl.gz"), "rt", encoding="utf-8") as f:
        out = [{"text": json.loads(next(f))["text"], "messages": None, "domain": "math"} for _ in range(120)]
    out += [{"text": None, "messages": m, "domain": None} for m in CHATS * 5]
    out.insert(7, {"text": None, "messages": None, "domain": "broken"})  # a bad record, reported in both
    return out


def write_pair(root, shards, large=False):
    """The rows as `shards` Parquet files and as JSONL twins of the same names."""
    data = rows()
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("id", pa.int64()), ("text", pa.large_string() if large else pa.string()),
                        ("messages", (pa.large_list if large else pa.list_)(message)), ("domain", pa.string())])
    for name in ("parquet", "jsonl"):
        os.makedirs(os.path.join(root, name, "data"))
    for s in range(shards):
        part = data[s::shards]
        stem = f"train-{s:05d}-of-{shards:05d}"
        table = pa.Table.from_pylist([dict(r, id=i) for i, r in enumerate(part)], schema=schema)
        pq.write_table(table, os.path.join(root, "parquet", "data", stem + ".parquet"), row_group_size=16)
        with open(os.path.join(root, "jsonl", "data", stem + ".jsonl"), "w") as f:
            for r in part:
                f.write(json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n")
    return os.path.join(root, "parquet"), os.path.join(root, "jsonl")


def dump(tmp, spec, label):
    out = os.path.join(tmp, f"{label}.blocks.jsonl")
    result = run_moeforge("data", "inspect", "--data", spec, "--tokenizer", TOK_DIR, "--block-size", "4096",
                          "--packing", "per-document", "--validation-fraction", "0", "--cache-dir", os.path.join(tmp, "cache-" + label),
                          "--dump", out, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"data inspect {spec}: {result.stderr.strip()}")
    with open(out) as f:  # documents are shuffled by the file's name (extension included): compare as multisets
        blocks = sorted(json.dumps({k: b[k] for k in ("split", "domain", "ids", "mask")}) for b in map(json.loads, f))
    return [json.loads(b) for b in blocks], result.stdout + result.stderr


def bad_count(report):
    match = re.search(r"(\d+) bad records?", report)
    return int(match.group(1)) if match else -1


def main():
    start = time.time()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "probe.parquet")
        pq.write_table(pa.table({"text": ["x"]}), empty)
        r = run_moeforge("data", "inspect", "--data", empty, "--tokenizer", TOK_DIR, check=False)
        if "without Parquet support" in r.stderr:
            print(f"SKIP: this build reads no Parquet ({r.stderr.strip()})")
            return 0
        for shards, large in ((2, False), (3, True)):
            base = os.path.join(tmp, f"s{shards}")
            parquet_dir, jsonl_dir = write_pair(base, shards, large)
            got, got_report = dump(tmp, parquet_dir, f"p{shards}")
            want, want_report = dump(tmp, jsonl_dir, f"j{shards}")
            label = f"{shards} shards ({'large_string/large_list' if large else 'string/list'})"
            if not got or got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                failures.append(f"{label}: {len(got)} blocks from Parquet, {len(want)} from JSONL; first difference at "
                                f"block {first}")
            if bad_count(got_report) != bad_count(want_report) or bad_count(got_report) == 0:
                failures.append(f"{label}: bad records reported {bad_count(got_report)} (Parquet) vs "
                                f"{bad_count(want_report)} (JSONL)")
            domains = sorted({b["domain"] for b in got})
            print(f"  {label}: {len(got)} blocks, domains {domains}, identical to JSONL: {got == want}")
        # one file by name, and a Hugging Face cache snapshot of the dataset
        single = os.path.join(tmp, "s2", "parquet", "data", "train-00000-of-00002.parquet")
        twin = os.path.join(tmp, "s2", "jsonl", "data", "train-00000-of-00002.jsonl")
        if dump(tmp, single, "single")[0] != dump(tmp, twin, "single-j")[0]:
            failures.append("a single Parquet file differs from its JSONL twin")
        hub = os.path.join(tmp, "hf", "hub", "datasets--org--tiny", "snapshots", "abc123")
        os.makedirs(os.path.dirname(hub))
        os.symlink(os.path.join(tmp, "s2", "parquet"), hub)
        os.environ["HF_HOME"] = os.path.join(tmp, "hf")
        cached, _ = dump(tmp, "org/tiny", "hub")
        if cached != dump(tmp, os.path.join(tmp, "s2", "jsonl"), "hub-j")[0]:
            failures.append("the HF-cache dataset 'org/tiny' differs from its JSONL twin")
        # errors: one line naming the file, exit 1
        no_text = os.path.join(tmp, "numbers.parquet")
        pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), no_text)
        not_parquet = os.path.join(tmp, "fake.parquet")
        with open(not_parquet, "w") as f:
            f.write('{"text": "I am JSON"}\n')
        for path, words in ((no_text, ["no column 'text' or 'messages'", "x, y"]), (not_parquet, ["not a readable Parquet file"])):
            r = run_moeforge("data", "inspect", "--data", path, "--tokenizer", TOK_DIR, "--cache-dir",
                             os.path.join(tmp, "cache-err"), check=False)
            message = r.stderr.strip()
            if r.returncode != 1 or path not in message or any(w not in message for w in words) or len(message.splitlines()) != 1:
                failures.append(f"{os.path.basename(path)}: expected exit 1 and one line naming it with {words}, got "
                                f"{r.returncode}: {message}")
    return finish("parquet data", failures, start, "Parquet rows tokenise exactly as their JSONL twins")


if __name__ == "__main__":
    sys.exit(main())
