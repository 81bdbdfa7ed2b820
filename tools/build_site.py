#!/usr/bin/env python
"""Build the course site: execute every lesson and render it to static HTML that opens offline.

    python tools/build_site.py [--out build/html] [--reuse] [LESSON ...]

What it does (``make html`` runs it):

1. executes each lesson top to bottom in a fresh kernel (nbclient, working directory
   ``lessons/``), and stops with the lesson's name and error if a cell fails;
2. renders it with nbconvert's ``lab`` template, with MathJax served from the site itself
   (copied from the ``jupyter-server-mathjax`` package), so formulas render without a network;
3. adds a navigation bar (course index, previous, next) to every page, points links between
   lessons (``06_gptq.ipynb``) at their pages and links to quizzes at the answer-free student
   copies it puts in ``quizzes/``, and turns links to lessons not written yet into plain text;
4. writes ``index.html``, the list of lessons with their titles.

The site is built in a temporary folder and then put in place of ``--out``, so a failed
build never leaves half a site. Interactive widgets need a running kernel: the pages
show their initial state (or nothing), and the lesson says how to run it in JupyterLab or Colab.
``--reuse`` keeps executed notebooks from an earlier build whose lesson has not changed
(``<out>/_executed/``), for quick re-rendering.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"  # the config jupyter-server-mathjax ships
# jupyter-server-mathjax ships MathJax 2 with the STIX-Web fonts only: use them (the default asks for TeX fonts)
MATHJAX_FONTS = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], '
                 'preferredFont: null, webFont: "STIX-Web", imageFont: null}});</script>')
NAV_STYLE = ("position:sticky;top:0;z-index:10;background:#f6f8fa;border-bottom:1px solid #d0d7de;"
             "padding:6px 16px;font:14px sans-serif;display:flex;gap:24px")


def lesson_title(nb) -> str:
    """The first markdown heading of a notebook, without the '#'s."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "untitled"


def execute(path: Path, cache: Path, reuse: bool, timeout: int):
    """The lesson executed in a fresh kernel (or the cached run, with --reuse and an unchanged lesson)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = cache / f"{path.stem}.{digest}.ipynb"
    if reuse and cached.is_file():
        return nbformat.read(str(cached), as_version=4)
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        raise SystemExit(f"error: {path.name} failed while executing:\n{str(exc)[-3000:]}") from None
    errors = [c for c in nb.cells if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)]
    if errors:
        raise SystemExit(f"error: {path.name} has {len(errors)} cell(s) with error output")
    cache.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(cached))
    return nb


def nav_bar(prev: tuple[str, str] | None, nxt: tuple[str, str] | None) -> str:
    """The navigation bar: index, previous and next lesson (page name, title)."""
    links = ['<a href="index.html">Course index</a>']
    if prev:
        links.append(f'<a href="{prev[0]}" rel="prev">&larr; {html.escape(prev[1])}</a>')
    if nxt:
        links.append(f'<a href="{nxt[0]}" rel="next">{html.escape(nxt[1])} &rarr;</a>')
    return f'<nav class="course-nav" style="{NAV_STYLE}">{"".join(links)}</nav>'


def render(nb, nav: str, lesson_names: set[str], quiz_names: set[str]) -> str:
    """HTML of an executed lesson, with the navigation bar, and links to lessons and quizzes fixed:
    ``06_gptq.ipynb`` -> ``06_gptq.html``, ``../quizzes/student/NN/NN.ipynb`` -> ``quizzes/NN.ipynb``
    (copied into the site), and a link to a lesson that does not exist yet -> plain text."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", mathjax_url=MATHJAX_URL)
    body, _ = exporter.from_notebook_node(nb)
    body = re.sub(r"<body([^>]*)>", lambda m: f"<body{m.group(1)}>\n{nav}", body, count=1)
    body = body.replace(f'<script src="{MATHJAX_URL}">', f'{MATHJAX_FONTS}\n<script src="{MATHJAX_URL}">', 1)

    def fix(m):
        href, text = m.group(1), m.group(2)
        lesson = re.fullmatch(r"(?:\./)?([0-9]{2}_[A-Za-z0-9_]+)\.ipynb(#.*)?", href)
        if lesson:
            name, anchor = lesson.group(1), lesson.group(2) or ""
            if name in lesson_names:
                return f'<a href="{name}.html{anchor}">{text}</a>'
            return f'<span title="this lesson is not written yet">{text}</span>'
        quiz = re.fullmatch(r"\.\./quizzes/student/([0-9]{2}_[A-Za-z0-9_]+)/\1\.ipynb", href)
        if quiz:
            name = quiz.group(1)
            if name in quiz_names:
                return f'<a href="quizzes/{name}.ipynb" download>{text}</a>'
            return f'<span title="this quiz is not written yet">{text}</span>'
        return m.group(0)

    return re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', fix, body, flags=re.S)


def index_page(entries: list[tuple[str, str]]) -> str:
    items = "\n".join(f'<li><a href="{page}">{html.escape(title)}</a></li>' for page, title in entries)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Quantization from First Principles</title>"
            "</head>\n<body style=\"font:16px sans-serif;max-width:48em;margin:2em auto\">\n"
            "<h1>Quantization from First Principles</h1>\n"
            "<p>Every lesson below was executed when this site was built; every number on it was computed then. "
            "Run them yourself in JupyterLab (<code>make lab</code>) or on Colab to use the widgets.</p>\n"
            f"<ol start=\"0\">\n{items}\n</ol>\n</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="`make html` runs this; open <out>/index.html in a browser.")
    parser.add_argument("lessons", nargs="*", type=Path, help="lesson notebooks (default: lessons/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html", help="site folder (default %(default)s)")
    parser.add_argument("--reuse", action="store_true", help="reuse executed notebooks of unchanged lessons")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default %(default)s)")
    args = parser.parse_args(argv)

    import jupyter_server_mathjax
    from tqdm.auto import tqdm

    sys.path.insert(0, str(ROOT / "src"))
    from courseutils.core.io import atomic_path

    paths = sorted(args.lessons) if args.lessons else sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise SystemExit(f"error: no such lesson notebook(s): {', '.join(missing) or 'none found in lessons/'}")
    cache = args.out / "_executed"
    executed = [(p, execute(p, cache, args.reuse, args.timeout)) for p in tqdm(paths, desc="executing lessons")]
    entries = [(f"{p.stem}.html", lesson_title(nb)) for p, nb in executed]
    names = {p.stem for p in paths}
    quizzes = {q.parent.name: q for q in (ROOT / "quizzes" / "student").glob("*/*.ipynb") if q.stem == q.parent.name}
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    with atomic_path(args.out, "out", directory=True) as tmp:
        shutil.copytree(mathjax, tmp / "mathjax")
        if cache.is_dir():
            shutil.copytree(cache, tmp / "_executed")
        (tmp / "quizzes").mkdir()
        for name, q in quizzes.items():  # the answer-free student copies, to download
            shutil.copy2(q, tmp / "quizzes" / q.name)
        for i, (p, nb) in enumerate(executed):
            nav = nav_bar(entries[i - 1] if i > 0 else None, entries[i + 1] if i + 1 < len(entries) else None)
            (tmp / entries[i][0]).write_text(render(nb, nav, names, set(quizzes)), encoding="utf-8")
        (tmp / "index.html").write_text(index_page(entries), encoding="utf-8")
    print(f"wrote {len(entries)} lesson pages and index.html to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
