"""llama.cpp's own converter (convert_hf_to_gguf.py with its conversion/ package and gguf-py), the
reference export-gguf is compared with. It ships in the llama-cpp-python sdist on PyPI; the first use
downloads that sdist with pip (a package registry, no model hub) and unpacks only the converter into
.cache/ (git-ignored), reused afterwards. MOEFORGE_LLAMA_CPP_SRC=DIR points at another llama.cpp tree.

    from llama_cpp_reference import convert
    convert("/tmp/model", "/tmp/ref.gguf", "q8_0")   # raises RuntimeError with the converter's output
"""
import glob
import os
import subprocess
import sys
import tarfile
import tempfile

VERSION = "0.3.36"  # llama-cpp-python, vendoring the llama.cpp whose converter we match
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CACHE = os.path.join(ROOT, ".cache", f"llama-cpp-python-{VERSION}")
_KEEP = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")


def source_dir():
    """The llama.cpp directory holding convert_hf_to_gguf.py (downloaded on first use)."""
    if os.environ.get("MOEFORGE_LLAMA_CPP_SRC"):
        return os.environ["MOEFORGE_LLAMA_CPP_SRC"]
    target = os.path.join(CACHE, "llama.cpp")
    if os.path.isfile(os.path.join(target, "convert_hf_to_gguf.py")):
        return target
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", f"llama-cpp-python=={VERSION}", "--no-deps",
                        "--no-binary", ":all:", "-d", tmp], check=True)
        (archive,) = glob.glob(os.path.join(tmp, "*.tar.gz"))
        prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
        staging = os.path.join(tmp, "llama.cpp")
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.name.startswith(prefix) and member.name[len(prefix):].startswith(_KEEP) and member.isfile():
                    member.name = member.name[len(prefix):]
                    tar.extract(member, staging, filter="data")
        os.replace(staging, target)  # complete or absent: a half-unpacked tree never looks usable
    return target


def convert(model_dir, out_file, outtype):
    """Runs the converter on a Hugging Face model directory."""
    src = source_dir()
    env = dict(os.environ, PYTHONPATH=os.path.join(src, "gguf-py"))
    result = subprocess.run([sys.executable, os.path.join(src, "convert_hf_to_gguf.py"), model_dir, "--outfile", out_file,
                             "--outtype", outtype], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py {model_dir} failed: {result.stderr[-2000:]}")
