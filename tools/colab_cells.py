#!/usr/bin/env python3
"""Write the "Open in Colab" badge and the Colab install cell into every lesson and quiz.

The repository's URL lives in one place, ``[project.urls] Repository`` in pyproject.toml;
this tool derives both from it:

- the **badge**, on the line after the title of the first (markdown) cell, pointing at
  ``lessons/NN_slug.ipynb`` for a lesson and at the answer-free ``quizzes/student/NN_slug/NN_slug.ipynb``
  for a quiz (a quiz's source has solutions: it must not be what Colab opens);
- the **install cell**, the second cell: on Colab only, it clones the repository into
  ``/content`` and runs ``tools/colab_install.py`` (llama-cpp-python for the runtime's CPU or
  GPU, then the course package); anywhere else it does nothing.

Usage::

    python tools/colab_cells.py           # write them into lessons/*.ipynb and quizzes/source/*/*.ipynb
    python tools/colab_cells.py --check   # exit 1 and list what is out of date; writes nothing

Only those two cells change; every other cell, and the file's JSON layout, stay byte for byte.
Files are written atomically (a temporary file, then a rename). The student copies of the
quizzes (``quizzes/student``) are generated from the sources: after a quiz source changed, run
``make quiz-keys`` (the instant-feedback keys hash every code cell, this one included, and
the student copies are regenerated). ``--check`` checks the student copies too.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\([^)\s]*\)")
MARK = '"google.colab" in sys.modules'  # how the tool recognises an install cell it should replace

INSTALL_CELL = '''\
# On Colab only: install the course (minutes; how long and why: README, "On Google Colab")
import os, subprocess, sys
if {mark}:
    import runpy
    url = "{url}"
    repo = "/content/{name}"
    if not os.path.isdir(repo):
        subprocess.run(["git", "clone", "--quiet", "--depth=1", url, repo], check=True)
    runpy.run_path(f"{{repo}}/tools/colab_install.py")["main"]([])'''


def repository_url(root: Path = ROOT) -> str:
    """``[project.urls] Repository`` of pyproject.toml (a ``https://github.com/OWNER/NAME`` URL)."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    match = re.search(r'^Repository\s*=\s*"([^"]+)"', section.group(1) if section else "", re.M)
    if not match or not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", match.group(1)):
        raise SystemExit(f"error: {root / 'pyproject.toml'} needs [project.urls] Repository = "
                         f'"https://github.com/OWNER/NAME" (Colab opens notebooks from GitHub)')
    return match.group(1)


def badge(url: str, target: str) -> str:
    """The badge's markdown: Colab opens ``target`` (a path in the repository) from branch main."""
    slug = url.removeprefix("https://github.com/")
    return f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/{slug}/blob/main/{target})"


def install_cell(url: str) -> str:
    """The install cell's source for the repository at ``url``."""
    return INSTALL_CELL.format(mark=MARK, url=url, name=url.rstrip("/").rsplit("/", 1)[-1])


def notebooks(root: Path = ROOT, students: bool = False) -> list[tuple[Path, str]]:
    """(notebook, what its badge opens) for every lesson and quiz source (and student copy)."""
    out = [(p, p.relative_to(root).as_posix()) for p in sorted((root / "lessons").glob("*.ipynb"))]
    folders = ["source", "student"] if students else ["source"]
    for folder in folders:
        for p in sorted((root / "quizzes" / folder).glob("*/*.ipynb")):
            if "_exam_" in p.parent.name or p.stem != p.parent.name:  # exam variants are generated
                continue
            out.append((p, f"quizzes/student/{p.parent.name}/{p.name}"))
    return out


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)  # nbformat's on-disk form of a cell's source


def with_badge(title: str, markdown: str) -> str:
    """``title`` (a markdown cell's source) with ``markdown`` as the badge: replaced, else after line 1."""
    if BADGE_RE.search(title):
        return BADGE_RE.sub(lambda _: markdown, title, count=1)
    head, _, rest = title.partition("\n")
    rest = rest.lstrip("\n")
    return f"{head}\n\n{markdown}" + (f"\n\n{rest}" if rest else "")


def synced(nb: dict, url: str, target: str, where: str = "notebook") -> dict:
    """A copy of ``nb`` with the badge and the install cell as the templates say; other cells untouched."""
    nb = json.loads(json.dumps(nb))
    cells = nb.get("cells", [])
    if not cells or cells[0].get("cell_type") != "markdown" or not _source(cells[0]).startswith("#"):
        raise SystemExit(f"error: {where}: the first cell must be the markdown title cell ('# ...')")
    cells[0]["source"] = _lines(with_badge(_source(cells[0]), badge(url, target)))
    code = install_cell(url)
    if len(cells) > 1 and cells[1].get("cell_type") == "code" and MARK in _source(cells[1]):
        cells[1]["source"] = _lines(code)
    else:
        new = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": _lines(code)}
        if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
            new["id"] = uuid.uuid4().hex[:8]
        cells.insert(1, new)
    return nb


def dumps(nb: dict) -> str:
    """nbformat's own on-disk JSON (sorted keys, indent 1, UTF-8), so untouched cells stay identical."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def out_of_date(root: Path = ROOT, students: bool = True) -> list[Path]:
    """Every notebook whose badge or install cell differs from the templates."""
    url = repository_url(root)
    stale = []
    for path, target in notebooks(root, students):
        text = path.read_text(encoding="utf-8")
        if dumps(synced(json.loads(text), url, target, str(path))) != text:
            stale.append(path)
    return stale


def write_all(root: Path = ROOT) -> list[Path]:
    """Bring every lesson and quiz source in line with the templates; the notebooks it changed."""
    url = repository_url(root)
    changed = []
    for path, target in notebooks(root):
        text = path.read_text(encoding="utf-8")
        new = dumps(synced(json.loads(text), url, target, str(path)))
        if new != text:
            write_atomic(path, new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="The module docstring says more.")
    parser.add_argument("--check", action="store_true", help="list out-of-date notebooks (exit 1 if any); write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course checkout (default: %(default)s)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        stale = out_of_date(root)
        for path in stale:
            print(f"out of date: {path.relative_to(root)}")
        if any("student" in p.relative_to(root).parts for p in stale):
            print("(student copies: run `make quiz-keys` after `python tools/colab_cells.py`)")
        return 1 if stale else 0
    changed = write_all(root)
    for path in changed:
        print(f"updated {path.relative_to(root)}")
    print(f"{len(changed)} notebook(s) updated, {len(notebooks(root)) - len(changed)} already up to date")
    if any("quizzes" in p.relative_to(root).parts for p in changed):
        print("a quiz changed: run `make quiz-keys` (keys and student copies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
