"""The tinycode corpus: the running Python's standard library, split by file.

Every machine that runs the course already has these files, so no download is needed.
Each file goes to ``train``, ``validation`` or ``calibration`` by a hash of its path
relative to the stdlib root, so the split is deterministic and a file keeps its split on
every Python version that ships it. A fingerprint (sha256 over paths and contents)
records exactly which text a model saw.

Each file can also be read as one of two *kinds* of text (lesson 09's calibration mismatch):
``"code"``, the file with its docstrings and comments removed, and ``"prose"``, the English
of those docstrings and comments alone (:func:`split_code_prose`). ``"all"`` is the file as it is.
"""
from __future__ import annotations

import ast
import hashlib
import io
import numbers
import sysconfig
import tokenize
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CourseError

__all__ = ["CorpusFile", "stdlib_files", "split_of", "corpus_text", "corpus_fingerprint", "split_code_prose",
           "SPLITS", "KINDS"]

SPLITS = ("train", "validation", "calibration")
KINDS = ("all", "code", "prose")
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


def split_code_prose(source: str) -> tuple[str, str]:
    """Split Python ``source`` into its code and its prose: ``(code, prose)``.

    - prose: every docstring (module, class, function; ``ast.get_docstring`` with its
      indentation cleaned) and every comment (``tokenize``'s COMMENT tokens, without the
      ``#``), in source order, one paragraph each;
    - code: the source without those docstrings and comments; lines left empty are dropped,
      so what remains is the statements, their indentation and their string literals.

    Raises:
        CourseError: ``source`` is not a string, or does not parse as Python.
    """
    if not isinstance(source, str):
        raise CourseError(f"source must be a str of Python code; got {type(source).__name__}")
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError, ValueError) as err:
        raise CourseError(f"source does not parse as Python ({type(err).__name__}: {err})") from None
    pieces: list[tuple[int, str]] = []  # (line, text) of every docstring and comment
    drop: set[int] = set()              # 1-based lines of docstrings
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node, clean=True)
        if doc is None:
            continue
        expr = node.body[0]
        pieces.append((expr.lineno, doc.strip()))
        drop.update(range(expr.lineno, expr.end_lineno + 1))
    lines = source.splitlines()
    cut: dict[int, int] = {}            # line -> column where its comment starts
    paragraphs: list[list] = []         # [first line, texts, last line]: comments on consecutive lines
    for t in tokens:
        if t.type != tokenize.COMMENT:
            continue
        line = t.start[0]
        cut[line] = t.start[1]
        text = t.string.lstrip("#").strip()
        if not text or text.startswith("!"):  # empty comments and shebangs carry no prose
            continue
        if paragraphs and paragraphs[-1][2] == line - 1:
            paragraphs[-1][1].append(text)
            paragraphs[-1][2] = line
        else:
            paragraphs.append([line, [text], line])
    pieces += [(first, "\n".join(texts)) for first, texts, _ in paragraphs]
    code_lines = []
    for i, line in enumerate(lines, start=1):
        if i in drop:
            continue
        line = line[:cut[i]].rstrip() if i in cut else line.rstrip()
        if line.strip():
            code_lines.append(line)
    prose = "\n\n".join(text for _, text in sorted(pieces, key=lambda p: p[0]))
    return "\n".join(code_lines) + "\n", prose + "\n"


def _text_of_kind(path: Path, kind: str) -> str | None:
    """A file's text as ``kind``; ``None`` when the file does not parse (kinds other than "all")."""
    text = _read(path)
    if kind == "all":
        return text
    try:
        code, prose = split_code_prose(text)
    except CourseError:
        return None
    return code if kind == "code" else prose


def corpus_text(split: str, root: str | Path | None = None, max_chars: int | None = None, kind: str = "all") -> str:
    """The files of one split joined by blank lines, in path order (optionally truncated).

    Args:
        split: one of ``SPLITS``.
        root: the stdlib folder (default: the running Python's).
        max_chars: stop after this many characters (None: the whole split).
        kind: ``"all"`` (the files as they are), ``"code"`` (docstrings and comments removed) or
            ``"prose"`` (only the docstrings and comments), see :func:`split_code_prose`.
    """
    if split not in SPLITS:
        raise CourseError(f"split={split!r} is not one of {SPLITS}")
    if kind not in KINDS:
        raise CourseError(f"kind={kind!r} is not one of {KINDS}")
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, numbers.Integral)
                                  or max_chars < 1):
        raise CourseError(f"max_chars={max_chars!r}; allowed: None or a positive integer")
    parts, total = [], 0
    for f in stdlib_files(root):
        if split_of(f.relpath) != split:
            continue
        body = _text_of_kind(f.path, kind)
        if body is None or (kind != "all" and not body.strip()):
            continue  # "all" keeps every file, empty ones too, exactly as before kinds existed
        text = body.strip("\n") + "\n\n"
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
