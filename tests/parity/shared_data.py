"""Where the tests' real tokenizers and corpora are (layout: tokenizers/<name>/, corpus/brown/, README.md).

shared_data_dir() is $MOEFORGE_SHARED_DATA when set (ctest always sets it to what CMake chose), else the
in-repository archive data/testdata.tar.xz: the copy CMake unpacked into a build tree of this checkout
(build*/testdata, if its stamp matches the archive's SHA-256), else one unpacked here with tarfile
into .cache/testdata-<hash> (git-ignored; reused while the archive is unchanged)."""
import glob
import hashlib
import os
import shutil
import tarfile
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
ARCHIVE = os.path.join(ROOT, "data", "testdata.tar.xz")
STAMP = ".archive-sha256"  # written by cmake/TestData.cmake, and below, after a complete unpack
_resolved = None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_matches(directory, digest):
    try:
        with open(os.path.join(directory, STAMP), encoding="ascii") as f:
            return f.read().strip() == digest
    except OSError:
        return False


def unpacked_archive():
    """The directory holding data/testdata.tar.xz unpacked (unpacking it on first use)."""
    if not os.path.isfile(ARCHIVE):
        raise SystemExit(f"{ARCHIVE} is missing; set MOEFORGE_SHARED_DATA to a directory with tokenizers/ and corpus/")
    digest = _sha256(ARCHIVE)
    for directory in sorted(glob.glob(os.path.join(ROOT, "build*", "testdata"))):
        if _stamp_matches(directory, digest):
            return directory
    cache = os.path.join(ROOT, ".cache", "testdata-" + digest[:16])
    if _stamp_matches(cache, digest):
        return cache
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="testdata-unpacking-", dir=os.path.dirname(cache))
    try:
        with tarfile.open(ARCHIVE, "r:xz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        with open(os.path.join(tmp, STAMP), "w", encoding="ascii") as f:
            f.write(digest + "\n")
        os.chmod(tmp, 0o755)
        shutil.rmtree(cache, ignore_errors=True)  # a stale or partial copy
        try:
            os.rename(tmp, cache)
        except OSError:  # another process renamed its copy there first
            if not _stamp_matches(cache, digest):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def shared_data_dir():
    global _resolved
    if _resolved is None:
        _resolved = os.environ.get("MOEFORGE_SHARED_DATA") or unpacked_archive()
    return _resolved


if __name__ == "__main__":
    print(shared_data_dir())
