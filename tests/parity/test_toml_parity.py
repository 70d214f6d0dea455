"""TOML reader parity with Python's tomllib (the reference): `moeforge config --lines` on
  - hand-written documents covering every TOML 1.0 form a recipe may use, and invalid ones;
  - random valid documents (random nesting written with headers, [[arrays]], dotted keys, inline
    tables, every string and number spelling);
  - single-character mutations of those (insert, delete, replace with a TOML-significant character):
    whatever tomllib accepts must read to the same JSON, whatever it rejects must be rejected.
Documents with dates or times (which moeforge rejects on purpose) must be rejected with that message,
and integers beyond 64 bits (which tomllib keeps, the spec says to reject) with theirs.
Env: MOEFORGE_BIN; SEED (default 0), MUTATIONS (default 1500)."""
import datetime
import json
import math
import os
import random
import sys
import tempfile
import tomllib

from moeforge_cli import run_moeforge

VALID = [
    'a = 1\nb = "two"\nc = 3.5\nd = true\n',
    'name = "x\\u00e9\\U0001F600\\t\\"q\\"\\\\"\nlit = \'C:\\\\no\\escape\'\n',
    'ml = """\nfirst\n  second \\\n   joined"""\nmll = \'\'\'\nraw \\n\n\'\'\'\n',
    'q = """""two quotes each side"""""\nr = \'\'\'\'\'x\'\'\'\'\'\n',
    'n = [1_000, -0, +7, 0xff, 0o17, 0b101, 1e3, 1.5E-3, -0.0, 6.02_2e2_3]\n',
    'seed = 1\n[defaults.optimizer]\nlr = 1e-4\nbetas = [0.9, 0.95]\n',
    '[[phases]]\nname = "a"\nselect = ["x", "y"]\n[phases.routing]\nforce_route = "selected"\n[[phases]]\nname = "b"\n',
    '[f]\napple.color = "red"\napple.taste.sweet = true\n[f.apple.texture]\nsmooth = true\n',
    '[a.b.c]\nx = 1\n[a]\ny = 2\n',
    't = { a = 1, b.c = [1, {d = 2}], "e f" = \'g\' }\n',
    'arr = [\n  1, # one\n  2,\n\n  3,\n]\nnested = [[], [[]], [{}, {a=[]}]]\n',
    '"quoted.key" = 1\n\'lit key\' = 2\nbare-key_1 = 3\n1234 = 4\n3.14 = 5\n',
    'a.b = 1\na.c = 2\n[x]\ny.z = 3\ny.w = 4\n',
    '[[p]]\n[p.q]\nv = 1\n[[p]]\n[p.q]\nv = 2\n[[p.r]]\nw = 3\n',
    'k = "crlf"\r\nm = """a\r\nb"""\r\n',
    '# only a comment\n\n\t  \n',
    '',
]

INVALID = [
    'a = 1\na = 2\n', '[t]\n[t]\n', 'x = "open\n', 'x = 012\n', 'x = 1__0\n',
    'x = "\\q"\n', 'x = 1 y = 2\n', 'x = {a = 1,\n b = 2}\n', 'x = {a = 1,}\n', 'x = {a = 1}\nx.b = 2\n',
    'x = [1]\n[[x]]\n', '[f]\napple.color = 1\n[f.apple]\n', '[a.b]\nz = 1\n[a]\nb.w = 2\n', 'a = 1\n[a]\n',
    'x = 1.\n', 'x = .5\n', 'x =\n', 'x = [1 2]\n', '= 1\n', 'a.b = 1\na = 2\n', 'x = 0x\n', 'x = +0x1\n',
    'x = "a\x01b"\n', '[[a]]\n[a]\n', 'x = truee\n', 'x = 1e\n', 'x = nan1\n', '[a\nb = 1\n', 'x = """unterminated\n',
    'x = \'\'\'a\'\'\'\'\'\'\n', 'a = 1\r\nb = 2\rc = 3\n', '# c \x7f\n', 'x = "\\uD800"\n', 'k = 1\n[k.l]\n',
]

# tomllib reads these; moeforge rejects them on purpose (dates; integers TOML says to refuse).
REFERENCE_ONLY = ['x = 9223372036854775808\n', 'x = -9223372036854775809\n', 'd = 1979-05-27\n',
                  't = 07:32:00\n', 'dt = 1979-05-27T07:32:00Z\n', 'a = [1, 1979-05-27]\n']

SIGNIFICANT = list('[]{}=.,"\'#\n \t_+-0123456789abcdefxoeEinft\\')


def random_scalar(rng):
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randrange(-10**12, 10**12)
    if kind == 1:
        return rng.choice([0, 1, -1, 2**63 - 1, -2**63, 255, 8, 5])
    if kind == 2:
        return rng.choice([0.5, -2.25, 1e-7, 3.0e20, 0.1, 123.456, -0.0])
    if kind == 3:
        return rng.choice([True, False])
    return "".join(rng.choice('ab Z9_-."\'\\\té€😀\n#[]{}=') for _ in range(rng.randrange(0, 9)))


def random_key(rng):
    return rng.choice(["a", "b", "lr", "phase-1", "x_y", "7", "with space", "dot.ted", "é", "q\"uote", "lit'"])


def random_value(rng, depth):
    r = rng.random()
    if depth > 2 or r < 0.6:
        return random_scalar(rng)
    if r < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def basic_string(rng, s):
    """A TOML basic string: escapes for quotes, backslashes and controls; non-ASCII raw or as \\u/\\U."""
    out = []
    for ch in s:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t" if rng.random() < 0.5 else "\t")
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\u%04x" % cp)
        elif cp > 0x7F and rng.random() < 0.5:
            out.append("\\u%04X" % cp if cp <= 0xFFFF else "\\U%08x" % cp)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_key(rng, key):
    bare = all(c.isalnum() and c.isascii() or c in "_-" for c in key) and key
    if bare and rng.random() < 0.7:
        return key
    if "'" not in key and "\n" not in key and rng.random() < 0.5:
        return "'" + key + "'"
    return basic_string(rng, key)


def write_string(rng, s):
    if "'" not in s and "\n" not in s and rng.random() < 0.3:
        return "'" + s + "'"
    if "'''" not in s and not s.endswith("'") and rng.random() < 0.15 and "\t" not in s:
        return "'''\n" + s + "'''"
    if rng.random() < 0.15 and '"""' not in s and "\\" not in s and not s.endswith('"'):
        return '"""' + s + '"""'
    return basic_string(rng, s)


def write_number(rng, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        if v >= 0 and rng.random() < 0.3:
            return rng.choice([hex(v), oct(v), bin(v)])
        text = str(v)
        if len(text.lstrip("-")) > 3 and rng.random() < 0.4:
            digits = text.lstrip("-")
            text = ("-" if v < 0 else "") + "_".join(reversed([digits[max(0, i - 3):i] for i in range(len(digits), 0, -3)]))
        return ("+" + text) if v > 0 and rng.random() < 0.1 else text
    return repr(v) if rng.random() < 0.5 else "%.17e" % v


def write_inline(rng, v):
    if isinstance(v, str):
        return write_string(rng, v)
    if isinstance(v, list):
        sep = ",\n  " if rng.random() < 0.3 else ", "
        return "[" + sep.join(write_inline(rng, x) for x in v) + ("," if v and rng.random() < 0.3 else "") + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{write_key(rng, k)} = {write_inline(rng, x)}" for k, x in v.items()) + "}"
    return write_number(rng, v)


def write_document(rng, doc):
    """TOML text for `doc` (a dict): scalars and lists inline, sub-dicts as [headers], dotted keys or
    inline tables, lists of dicts sometimes as [[arrays of tables]]."""
    lines = []

    def emit(path, table):
        tables, arrays, later = [], [], []
        for k, v in table.items():
            if isinstance(v, dict) and v and rng.random() < 0.6:
                tables.append((k, v))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and rng.random() < 0.7:
                arrays.append((k, v))
            elif isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values()) and rng.random() < 0.5:
                for k2, x in v.items():  # dotted keys
                    later.append(f"{write_key(rng, k)}.{write_key(rng, k2)} = {write_inline(rng, x)}")
            else:
                lines.append(f"{write_key(rng, k)} = {write_inline(rng, v)}" + (" # note" if rng.random() < 0.1 else ""))
        lines.extend(later)
        for k, v in tables:
            lines.append("")
            lines.append("[" + ".".join(write_key(rng, p) for p in path + [k]) + "]")
            emit(path + [k], v)
        for k, v in arrays:
            for element in v:
                lines.append("")
                lines.append("[[" + ".".join(write_key(rng, p) for p in path + [k]) + "]]")
                emit(path + [k], element)

    emit([], doc)
    return "\n".join(lines) + "\n"


def random_document(rng):
    doc = {}
    for _ in range(rng.randrange(1, 7)):
        doc[random_key(rng)] = random_value(rng, 0)
    if rng.random() < 0.5:
        doc["phases"] = [{random_key(rng): random_value(rng, 1) for _ in range(rng.randrange(1, 4))}
                         for _ in range(rng.randrange(1, 4))]
    return doc


def has_datetime(v):
    if isinstance(v, (datetime.date, datetime.time, datetime.datetime)):
        return True
    if isinstance(v, dict):
        return any(has_datetime(x) for x in v.values())
    if isinstance(v, list):
        return any(has_datetime(x) for x in v)
    return False


def has_big_int(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return not -2**63 <= v < 2**63
    if isinstance(v, dict):
        return any(has_big_int(x) for x in v.values())
    if isinstance(v, list):
        return any(has_big_int(x) for x in v)
    return False


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def recipes_as_toml(tmp, rng):
    """Every shipped recipe written as TOML reads back to the same JSON, and training from a TOML
    recipe writes the same trainable.safetensors as from its JSON twin."""
    from train_common import make_setup, read  # noqa: E402 (builds a tiny model with moeforge itself)
    failures = []
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes")
    for name in sorted(n for n in os.listdir(root) if n.endswith(".json")):  # README.md beside them
        with open(os.path.join(root, name)) as f:
            recipe = json.load(f)
        path = os.path.join(tmp, name.replace(".json", ".toml"))
        with open(path, "w") as f:
            f.write(write_document(rng, recipe))
        got = json.loads(run_moeforge("config", path).stdout)
        if not same(got, recipe):
            failures.append(f"recipes/{name} as TOML reads back differently:\n  {got}\n  {recipe}")
    model, corpus = make_setup(tmp)
    recipe = {"seed": 3, "threads": 1, "defaults": {"batch_size": 2, "seq_len": 16, "optimizer": {"lr": 1e-2}},
              "phases": [{"name": "experts", "steps": 2, "select": "experts=1:0 + router",
                          "routing": {"force_route": "selected"}},
                         {"name": "lora", "steps": 2, "select": "attention", "method": "lora", "lora": {"rank": 2}}]}
    outputs = {}
    for ext in ("json", "toml"):
        path = os.path.join(tmp, "recipe." + ext)
        with open(path, "w") as f:
            f.write(json.dumps(recipe) if ext == "json" else write_document(rng, recipe))
        run = os.path.join(tmp, "run_" + ext)
        run_moeforge("train", model, "--data", corpus, "--recipe", path, "--out", run, "--no-progress")
        outputs[ext] = read(os.path.join(run, "trainable.safetensors"))
    if outputs["json"] != outputs["toml"]:
        failures.append("training from the TOML recipe differs from its JSON twin")
    names = [n for n in os.listdir(root) if n.endswith(".json")]
    if len(names) < 5:
        failures.append(f"expected the shipped recipes in {root}, found {names}")
    print(f"{len(names)} shipped recipes read back from TOML; a TOML-recipe training run "
          f"{'equals' if outputs['json'] == outputs['toml'] else 'DIFFERS from'} its JSON twin")
    return failures


def main():
    rng = random.Random(int(os.environ.get("SEED", "0")))
    mutations = int(os.environ.get("MUTATIONS", "1500"))
    docs = [(text, "valid") for text in VALID] + [(text, "invalid") for text in INVALID]
    docs += [(text, "reference-only") for text in REFERENCE_ONLY]
    generated = []
    for _ in range(150):
        text = write_document(rng, random_document(rng))
        tomllib.loads(text)  # the generator must write valid TOML
        generated.append(text)
    docs += [(t, "random") for t in generated]
    seeds = [t for t in VALID + generated if t]
    for _ in range(mutations):
        text = rng.choice(seeds)
        i = rng.randrange(len(text) + 1)
        op = rng.randrange(3)
        c = rng.choice(SIGNIFICANT)
        text = text[:i] + c + text[i:] if op == 0 else text[:i] + text[i + 1:] if op == 1 else text[:i] + c + text[i + 1:]
        docs.append((text, "mutation"))

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, (text, _) in enumerate(docs):
            path = os.path.join(tmp, f"d{n}.toml")
            with open(path, "wb") as f:
                f.write(text.encode())
            paths.append(path)
        out = run_moeforge("config", "--lines", *paths, check=False)
        results = {}
        for line in out.stdout.splitlines():
            r = json.loads(line)
            results[r["file"]] = r
        counts = {"accepted": 0, "rejected": 0, "dates": 0}
        for path, (text, kind) in zip(paths, docs):
            ours = results.get(path)
            if ours is None:
                failures.append(f"{kind}: no output for {text!r}")
                continue
            try:
                want = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                want, why = None, str(e)
            if kind == "invalid" and want is not None:
                failures.append(f"test data: tomllib accepts the 'invalid' document {text!r}")
            if want is None:
                counts["rejected"] += 1
                if "error" not in ours:
                    failures.append(f"{kind}: tomllib rejects ({why}) but moeforge reads {text!r} as {ours['json']}")
                elif not ours["error"].startswith(path + ":"):
                    failures.append(f"{kind}: error without file:line:col: {ours['error']}")
            elif has_big_int(want):
                counts["dates"] += 1
                if "integer out of the 64-bit range" not in ours.get("error", ""):
                    failures.append(f"{kind}: a >64-bit integer must be rejected with its message, got {ours} for {text!r}")
            elif has_datetime(want):
                counts["dates"] += 1
                if "dates and times are not supported" not in ours.get("error", ""):
                    failures.append(f"{kind}: a date must be rejected with its message, got {ours} for {text!r}")
            else:
                counts["accepted"] += 1
                if "error" in ours:
                    failures.append(f"{kind}: tomllib reads {text!r} but moeforge says {ours['error']}")
                else:
                    got = json.loads(json.dumps(ours["json"]))
                    # nlohmann writes inf/nan as null: compare those through the reference's JSON form.
                    expected = json.loads(json.dumps(want).replace("NaN", "null").replace("-Infinity", "null").replace("Infinity", "null"))
                    if not same(got, expected):
                        failures.append(f"{kind}: {text!r}\n  moeforge {got}\n  tomllib  {expected}")
        failures += recipes_as_toml(tmp, rng)
    print(f"{len(docs)} documents: {counts['accepted']} read by both, {counts['rejected']} rejected by tomllib "
          f"(and so by moeforge), {counts['dates']} with dates or >64-bit integers; {len(failures)} failures")
    for f in failures[:25]:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
