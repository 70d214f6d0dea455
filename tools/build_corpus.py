#!/usr/bin/env python3
"""Rebuilds moeforge's embedded multi-domain corpus (data/corpus/{prose,code,math}.jsonl.gz), byte for
byte: same inputs -> same files (sorted inputs, fixed seed, gzip mtime 0).

    python3 tools/build_corpus.py [--brown DIR] [--pylib DIR] [--out data/corpus]

prose: the Brown Corpus (POS tags stripped, detokenised), one record per ~1500-character run of
       sentences, with `genre` (the 15 Brown genres); code: Python standard-library modules, split at
       top-level statements into ~3000-character records; math: generated arithmetic, algebra and
       word problems with worked answers. Every record: {"text", "domain", ...}. Licences: data/LICENSES.md.
"""
import argparse
import gzip
import io
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

GENRES = {
    "a": "press_reportage", "b": "press_editorial", "c": "press_reviews", "d": "religion",
    "e": "skill_and_hobbies", "f": "popular_lore", "g": "belles_lettres", "h": "government",
    "j": "learned", "k": "fiction_general", "l": "fiction_mystery", "m": "fiction_science",
    "n": "fiction_adventure", "p": "fiction_romance", "r": "humor",
}

PROSE_RECORD_CHARS = 1500
CODE_RECORD_CHARS = 3000
CODE_MAX_BYTES = 1_900_000  # raw source taken from the standard library (sorted module order)
MATH_RECORDS = 6000
MATH_SEED = 20240607


# --- prose -------------------------------------------------------------------------------------
NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "n't", "'s", "'re", "'ve", "'ll", "'d", "'m"}
NO_SPACE_AFTER = {"(", "[", "``", "$"}


def detokenize(words):
    out = []
    attach = True  # no space before the next word
    for w in words:
        text = '"' if w in ("``", "''") else w
        if w == "--":
            text = "--"
        if w == "." and out and out[-1].endswith("."):
            continue  # "Jr." ending a sentence: Brown repeats the period
        if out and not attach and w not in NO_SPACE_BEFORE:
            out.append(" ")
        out.append(text)
        attach = w in NO_SPACE_AFTER
    return "".join(out)


def brown_sentences(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
            if not tokens:
                continue
            words = [t.rsplit("/", 1)[0] if "/" in t[1:] else t for t in tokens]
            sentence = detokenize(words)
            if sentence:
                yield sentence


def build_prose(brown_dir):
    records = []
    names = sorted(n for n in os.listdir(brown_dir) if re.fullmatch(r"c[a-r]\d\d", n))
    for name in names:
        genre = GENRES[name[1]]
        chunk = []
        size = 0
        for sentence in brown_sentences(os.path.join(brown_dir, name)):
            chunk.append(sentence)
            size += len(sentence) + 1
            if size >= PROSE_RECORD_CHARS:
                records.append({"text": " ".join(chunk), "domain": "prose", "genre": genre, "source": f"brown/{name}"})
                chunk, size = [], 0
        if chunk:
            records.append({"text": " ".join(chunk), "domain": "prose", "genre": genre, "source": f"brown/{name}"})
    return records


# --- code --------------------------------------------------------------------------------------
def split_python(source):
    """Chunks of whole top-level statements (a line starting at column 0 that is not a comment
    continuation starts a new statement), each at most ~CODE_RECORD_CHARS unless one statement is longer."""
    lines = source.splitlines(keepends=True)
    statements, current = [], []
    for line in lines:
        starts = line[:1] not in ("", " ", "\t", "\n", ")", "]", "}", "#") and not line.startswith(("else", "elif", "except", "finally"))
        if starts and current:
            statements.append("".join(current))
            current = []
        current.append(line)
    if current:
        statements.append("".join(current))
    chunks, chunk = [], ""
    for s in statements:
        if chunk and len(chunk) + len(s) > CODE_RECORD_CHARS:
            chunks.append(chunk)
            chunk = ""
        chunk += s
    if chunk.strip():
        chunks.append(chunk)
    return [c.strip("\n") + "\n" for c in chunks if c.strip()]


def build_code(pylib):
    records = []
    total = 0
    names = sorted(n for n in os.listdir(pylib) if n.endswith(".py") and not n.startswith("_"))
    for name in names:
        with open(os.path.join(pylib, name), "rb") as f:
            raw = f.read()
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if total + len(raw) > CODE_MAX_BYTES:
            continue
        total += len(raw)
        for chunk in split_python(source):
            records.append({"text": chunk, "domain": "code", "language": "python", "source": f"Lib/{name}"})
    return records


# --- math --------------------------------------------------------------------------------------
NAMES = ["Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Iris", "Jack", "Kira", "Leo", "Maya", "Noah"]
ITEMS = [("apple", "apples"), ("marble", "marbles"), ("book", "books"), ("pencil", "pencils"),
         ("stamp", "stamps"), ("cookie", "cookies"), ("shell", "shells"), ("card", "cards")]


def arithmetic(rng):
    op = rng.choice(["+", "-", "*", "/"])
    if op == "+":
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        return f"Compute {a} + {b}.", f"{a} + {b} = {a + b}. The answer is {a + b}."
    if op == "-":
        a, b = sorted((rng.randint(2, 999), rng.randint(2, 999)), reverse=True)
        return f"Compute {a} - {b}.", f"{a} - {b} = {a - b}. The answer is {a - b}."
    if op == "*":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        tens, ones = b // 10 * 10, b % 10
        steps = f"{a} * {b} = {a} * {tens} + {a} * {ones} = {a * tens} + {a * ones} = {a * b}." if tens and ones \
            else f"{a} * {b} = {a * b}."
        return f"Compute {a} * {b}.", f"{steps} The answer is {a * b}."
    b = rng.randint(2, 25)
    q, r = rng.randint(2, 60), rng.randint(0, b - 1)
    a = b * q + r
    rest = f" remainder {r}" if r else ""
    return (f"Divide {a} by {b}.",
            f"{b} * {q} = {b * q}, and {a} - {b * q} = {r}. So {a} / {b} = {q}{rest}. The answer is {q}{rest}.")


def algebra(rng):
    a, x, b = rng.randint(2, 12), rng.randint(-20, 20), rng.randint(-50, 50)
    c = a * x + b
    sign = "+" if b >= 0 else "-"
    return (f"Solve for x: {a}x {sign} {abs(b)} = {c}.",
            f"{'Subtract' if b >= 0 else 'Add'} {abs(b)} {'from' if b >= 0 else 'to'} both sides: {a}x = {c - b}. "
            f"Divide by {a}: x = {x}. The answer is x = {x}.")


def fraction(rng):
    from fractions import Fraction
    p, q = Fraction(rng.randint(1, 9), rng.randint(2, 10)), Fraction(rng.randint(1, 9), rng.randint(2, 10))
    s = p + q
    return (f"Add the fractions {p} and {q}.",
            f"With the common denominator {p.denominator * q.denominator // __import__('math').gcd(p.denominator, q.denominator)}, "
            f"{p} + {q} = {s}. The answer is {s}.")


def word_problem(rng):
    name, other = rng.sample(NAMES, 2)
    one, many = rng.choice(ITEMS)
    kind = rng.randint(0, 3)
    if kind == 0:
        a, b = rng.randint(3, 60), rng.randint(2, 40)
        return (f"{name} has {a} {many}. {other} gives {name} {b} more. How many {many} does {name} have now?",
                f"{name} starts with {a} and gets {b} more: {a} + {b} = {a + b}. The answer is {a + b}.")
    if kind == 1:
        a = rng.randint(20, 90)
        b = rng.randint(1, a - 1)
        return (f"{name} had {a} {many} and gave {b} of them to {other}. How many are left?",
                f"{a} - {b} = {a - b}. {name} has {a - b} {many} left. The answer is {a - b}.")
    if kind == 2:
        boxes, per = rng.randint(2, 12), rng.randint(2, 24)
        return (f"There are {boxes} boxes with {per} {many} in each box. How many {many} are there in total?",
                f"{boxes} * {per} = {boxes * per}. The answer is {boxes * per}.")
    people, per = rng.randint(2, 9), rng.randint(2, 15)
    total = people * per
    return (f"{name} shares {total} {many} equally among {people} friends. How many does each friend get?",
            f"{total} / {people} = {per}. Each friend gets {per} {many if per != 1 else one}. The answer is {per}.")


def build_math():
    rng = random.Random(MATH_SEED)
    kinds = [("arithmetic", arithmetic), ("algebra", algebra), ("fractions", fraction), ("word_problem", word_problem)]
    records = []
    for i in range(MATH_RECORDS):
        kind, make = kinds[i % len(kinds)]
        count = rng.randint(2, 5)
        problems = [make(rng) for _ in range(count)]
        text = "\n\n".join(f"Problem: {q}\nSolution: {a}" for q, a in problems)
        records.append({"text": text, "domain": "math", "kind": kind, "prompt": problems[0][0]})
    return records


# --- output ------------------------------------------------------------------------------------
def write_jsonl_gz(path, records):
    buffer = io.BytesIO()
    for r in records:
        buffer.write((json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))
    data = gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return len(buffer.getvalue()), len(data)


def default_pylib():
    for candidate in ("/root/.pyenv/versions/3.11.7/lib/python3.11", "/usr/lib/python3.11"):
        if os.path.isfile(os.path.join(candidate, "abc.py")):
            return candidate
    return os.path.dirname(os.__file__)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brown", default=None,
                        help="Brown corpus folder (default: corpus/brown of $MOEFORGE_SHARED_DATA, else of data/testdata.tar.xz)")
    parser.add_argument("--pylib", default=default_pylib(), help="a Python 3.11 Lib directory")
    parser.add_argument("--out", default=os.path.join(ROOT, "data", "corpus"))
    args = parser.parse_args()
    if args.brown is None:
        sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
        from shared_data import shared_data_dir
        args.brown = os.path.join(shared_data_dir(), "corpus", "brown")
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, records in (("prose", build_prose(args.brown)), ("code", build_code(args.pylib)), ("math", build_math())):
        raw, packed = write_jsonl_gz(os.path.join(args.out, f"{name}.jsonl.gz"), records)
        total += packed
        print(f"{name}: {len(records)} records, {raw / 1e6:.2f} MB raw, {packed / 1e6:.2f} MB gzip")
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
