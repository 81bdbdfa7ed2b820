"""The tinycode corpus: the running Python's standard library, split by file.

Every machine that runs the course already has these files, so no download is needed.
Each file goes to ``train``, ``validation`` or ``calibration`` by a hash of its path
relative to the stdlib root, so the split is deterministic and a file keeps its split on
every Python version that ships it. A fingerprint (sha256 over paths and contents)
records exactly which text a model saw.
"""
from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CourseError

__all__ = ["CorpusFile", "stdlib_files", "split_of", "corpus_text", "corpus_fingerprint", "SPLITS"]

SPLITS = ("train", "validation", "calibration")
# Folders left out: test suites (huge, repetitive), IDLE, vendored third-party code.
EXCLUDED_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "ensurepip",
                  "lib2to3", "__pycache__", "turtledemo", "pydoc_data"}
MAX_FILE_BYTES = 400_000


@dataclass(frozen=True)
class CorpusFile:
    relpath: str  # path relative to the stdlib root, with '/' separators
    path: Path


def split_of(relpath: str) -> str:
    """Assign a file to a split from the sha256 of its relative path (90 / 5 / 5 %)."""
    bucket = int(hashlib.sha256(relpath.encode()).hexdigest(), 16) % 100
    if bucket < 90:
        return "train"
    return "validation" if bucket < 95 else "calibration"


def stdlib_files(root: str | Path | None = None) -> list[CorpusFile]:
    """All corpus ``.py`` files under the stdlib root, sorted by relative path."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    files = []
    for path in base.rglob("*.py"):
        rel = path.relative_to(base)
        if EXCLUDED_PARTS.intersection(rel.parts[:-1]) or not path.is_file():
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        files.append(CorpusFile(rel.as_posix(), path))
    return sorted(files, key=lambda f: f.relpath)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def corpus_text(split: str, root: str | Path | None = None, max_chars: int | None = None) -> str:
    """The files of one split joined by blank lines, in path order (optionally truncated)."""
    if split not in SPLITS:
        raise CourseError(f"split={split!r} is not one of {SPLITS}")
    parts, total = [], 0
    for f in stdlib_files(root):
        if split_of(f.relpath) != split:
            continue
        text = _read(f.path).strip("\n") + "\n\n"
        parts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    joined = "".join(parts)
    return joined[:max_chars] if max_chars is not None else joined


def corpus_fingerprint(root: str | Path | None = None) -> dict:
    """sha256 over (path, content hash) of every file, overall and per split, plus counts."""
    overall = hashlib.sha256()
    per_split = {s: hashlib.sha256() for s in SPLITS}
    counts = {s: 0 for s in SPLITS}
    chars = {s: 0 for s in SPLITS}
    for f in stdlib_files(root):
        data = _read(f.path)
        line = f"{f.relpath}\0{hashlib.sha256(data.encode()).hexdigest()}\n".encode()
        split = split_of(f.relpath)
        overall.update(line)
        per_split[split].update(line)
        counts[split] += 1
        chars[split] += len(data)
    return {"sha256": overall.hexdigest(), "splits": {s: {"sha256": per_split[s].hexdigest(), "files": counts[s],
                                                          "chars": chars[s]} for s in SPLITS}}
