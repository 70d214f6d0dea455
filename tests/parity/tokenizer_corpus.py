"""Deterministic test corpus for the tokenizer parity test: varied strings covering many scripts,
combining marks and decomposed forms (NFC), emoji sequences, whitespace runs, numbers, code,
special-token text, contractions and lines of the Brown corpus."""
import os
import random

SPECIALS = ["<|endoftext|>", "<|startoftext|>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>",
            "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<think>", "</think>", "<tool_call>", "<|return|>", "<|channel|>",
            "<|message|>", "<|reserved_special_token_7|>", "<|fim_prefix|>", "<|endofprompt|>"]

SCRIPTS = {
    "cjk": (0x4E00, 0x9FFF), "hiragana": (0x3041, 0x3096), "katakana": (0x30A1, 0x30FA),
    "hangul": (0xAC00, 0xD7A3), "arabic": (0x0621, 0x064A), "hebrew": (0x05D0, 0x05EA),
    "devanagari": (0x0905, 0x0939), "thai": (0x0E01, 0x0E3A), "cyrillic": (0x0410, 0x044F),
    "greek": (0x0391, 0x03C9), "latin1": (0x00C0, 0x00FF), "latin_ext": (0x0100, 0x017F),
    "georgian": (0x10D0, 0x10FA), "armenian": (0x0531, 0x0556), "tamil": (0x0B85, 0x0BB9),
    "bengali": (0x0985, 0x09B9), "ethiopic": (0x1200, 0x1248), "math": (0x2200, 0x22FF),
    "box": (0x2500, 0x257F), "cjk_ext_b": (0x20000, 0x2A6DF), "fullwidth": (0xFF01, 0xFF5E),
}

FIXED = [
    "", " ", "  ", "\n", "\n\n", "\t", " \t\n ", "a", "Hello world", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.", "  leading spaces", "trailing spaces   ",
    "\n\nleading newlines", "trailing newlines\n\n\n", "tabs\tand\t\ttabs", "mixed \t \n \r\n line ends\r\n",
    "I'm you're he'll she'd it's we've they're DON'T I'M WE'LL", "It’s curly ’s ‘quoted’ “double”",
    "ſ'S ſ's 'ſ", "HeLLo WoRLD camelCaseWord snake_case_word ALLCAPS MiXeD",
    "café naïve résumé coöperate Ångström", "cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m",
    "\u212b \u2126 \u00c5 A\u030a", "a\u0301\u0316 a\u0316\u0301 e\u0323\u0302 e\u0302\u0323 ự ự",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af 한글", "\u0958 \u0915\u093c \u09dc",
    "a\u0301\u1dfa b\u1dfa\u0301 \u0d3b\u0d3c x\u08ca\u0301", "\u0344 \u0340 \u0341 \u0343 \u0374 \u037e \u0387",
    "Tiếng Việt có dấu: Nguyễn Thị Minh Khai", "עִבְרִית עם ניקוד", "العَرَبِيَّة مع التشكيل",
    "हिन्दी भाषा क्षत्रिय", "ภาษาไทย สวัสดีครับ", "日本語のテキストです。東京タワー", "中文文本测试，标点符号！",
    "한국어 텍스트 테스트입니다", "Русский текст с ЗАГЛАВНЫМИ", "Ελληνικά κείμενα ΑΒΓ",
    "👋 hello 🌍🚀✨", "👨‍👩‍👧‍👦 family 👩🏽‍💻 coder 🏳️‍🌈 flag", "🇺🇸🇯🇵🇩🇪 flags 🇬🇧", "1️⃣ #️⃣ *️⃣ keycaps",
    "❤️ ♥ ☺️ ✔︎ text vs emoji", "🧑🏿‍🤝‍🧑🏻 🫶🏼 🪿",
    "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159 2.71828 -42 +17 1e10 0x1F 0b1010", "1,234,567.89 $1.99 €20 ¥300 £5",
    "٠١٢٣٤٥٦٧٨٩ ०१२३४५६७८९ １２３４５ ①②③ ½ ¾ ² ³", "2024-01-15T10:30:00Z 192.168.0.1 v1.2.3",
    "def foo(x):\n    return x * 2\n", "int main() {\n\treturn 0;\n}\n",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<html><body><div class=\"x\">Hi</div></body></html>", "SELECT * FROM users WHERE id = 42;",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(i)", "x => x ** 2 // comment /* block */",
    "$ ls -la | grep foo && echo done > /dev/null 2>&1", "#include <vector>\nstd::vector<int> v{1,2,3};",
    "\ufffd replacement \ufeff bom \u200b zwsp \u200d zwj \u200c zwnj \u2060 wj",
    "\ue000 private \U000f0000 plane15 \U0010ffff max \uffff nonchar \ufffe",
    "\x00 nul \x01 \x1b[31m ansi \x7f del \x85 nel \x9f c1", "\u0085\u0085 nel nel\u0085",
    "\u00a0nbsp\u00a0\u00a0 \u2000\u2001\u2002 \u3000ideographic\u3000", "\u2028 line sep \u2029 para sep",
    "\u180e mongolian \u1680 ogham", "́leading combining mark", "\u0301\u0301\u0301",
    "a" * 300, "ab" * 200, " " * 500, "\n" * 100, "word " * 200, "😀" * 50, "日本" * 100,
    "<|endoftext|>", "<|endoftext|><|endoftext|>", "text<|endoftext|>text", "<s>hello</s>",
    " <s> spaced </s> ", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>",
    "<|endoftext", "endoftext|>", "<|im_start", "<<s>>", "<s><s></s></s>", "<think>reasoning</think>answer",
    "<|channel|>analysis<|message|>thinking<|return|>", "<unk> unknown <UNK>",
    "ℌ𝔢𝔩𝔩𝔬 𝕎𝕠𝕣𝕝𝕕 𝓢𝓬𝓻𝓲𝓹𝓽", "ﬁ ﬂ ﬃ ligatures Ⅻ ㎏ ㍿", "x² + y² = z²", "∀x∈ℝ: x² ≥ 0 ∑∫∂√∞",
]


def brown_lines(data_dir, count, rng):
    folder = os.path.join(data_dir, "corpus", "brown")
    names = sorted(n for n in os.listdir(folder) if len(n) == 4 and n[0].isalpha() and n[2:].isdigit())
    lines = []
    for name in names[::max(1, len(names) // 60)]:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            for raw in f:
                words = [w.rsplit("/", 1)[0] for w in raw.split()]
                if len(words) > 3:
                    lines.append(" ".join(words))
    rng.shuffle(lines)
    return lines[:count]


def brown_text(data_dir):
    """All Brown files, tags stripped, one sentence per line (the benchmark's text)."""
    folder = os.path.join(data_dir, "corpus", "brown")
    names = sorted(n for n in os.listdir(folder) if len(n) == 4 and n[0].isalpha() and n[2:].isdigit())
    out = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            for raw in f:
                words = [w.rsplit("/", 1)[0] for w in raw.split()]
                if words:
                    out.append(" ".join(words))
    return "\n".join(out) + "\n"


def random_script_text(rng):
    name = rng.choice(sorted(SCRIPTS))
    lo, hi = SCRIPTS[name]
    words = []
    for _ in range(rng.randint(1, 6)):
        words.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 8))))
    return rng.choice([" ", "", "  ", "\n", "、", ", "]).join(words)


COMBINING = [0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A, 0x0316, 0x0323, 0x0327, 0x0328,
             0x0345, 0x05B4, 0x064E, 0x0651, 0x093C, 0x094D, 0x0E31, 0x0E48, 0x3099, 0x309A, 0x20DD]
WS = [" ", "  ", "\t", "\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u3000", "\u0085", "\u2009", "\n\n\n", "    "]


def random_mixture(rng):
    parts = []
    for _ in range(rng.randint(1, 10)):
        kind = rng.randrange(9)
        if kind == 0:
            parts.append(random_script_text(rng))
        elif kind == 1:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 25))))
        elif kind == 2:
            base = rng.choice("aeiouAEIOUnscgkhwy")
            parts.append(base + "".join(chr(rng.choice(COMBINING)) for _ in range(rng.randint(1, 3))))
        elif kind == 3:
            parts.append(rng.choice(SPECIALS))
        elif kind == 4:
            parts.append(rng.choice(["😀", "👍🏽", "👨‍💻", "🇫🇷", "❤️", "🏴‍☠️", "🤷‍♀️", "✨", "🔥", "🙏"]))
        elif kind == 5:
            parts.append(rng.choice(["don't", "I'll", "we're", "THEY'VE", "she'd", "it's", "o'clock", "'s"]))
        elif kind == 6:
            parts.append("".join(rng.choice("{}[]()<>;:.,!?-_=+*&^%$#@~`|\\/\"'") for _ in range(rng.randint(1, 5))))
        elif kind == 7:
            parts.append(rng.choice(["Hello", "world", "The", "tokenizer", "MoE", "expert", "routing", "GPU"]))
        else:
            parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF),
                                         rng.randint(0x1F300, 0x1FAFF), rng.randint(0x10000, 0x10FFFF)])))
        parts.append(rng.choice(WS + [""] * 6))
    text = "".join(parts)
    # drop unpaired surrogates (not encodable)
    return "".join(c for c in text if not 0xD800 <= ord(c) < 0xE000)


def build_corpus(data_dir, size=1200, seed=1234):
    rng = random.Random(seed)
    corpus = list(FIXED)
    corpus += brown_lines(data_dir, 350, rng)
    while len(corpus) < size:
        r = rng.random()
        if r < 0.35:
            corpus.append(random_script_text(rng))
        elif r < 0.9:
            corpus.append(random_mixture(rng))
        else:
            ws = "".join(rng.choice(WS) for _ in range(rng.randint(1, 6)))
            corpus.append(ws + rng.choice(["word", "Ab 12", "日本", "x"]) + ws)
    return corpus
