"""The course's nbgrader plug-ins, and the environment nbgrader runs in.

``quizzes/nbgrader_config.py`` names these preprocessors by their import path:

- :class:`QuizExecute` (autograde): nbgrader's Execute plus a total time budget per notebook.
- :class:`HideTestOutputs` (feedback): a failing test cell shows one line (question, title, what
  failed, hint), no traceback.
- :class:`RenderMath` (feedback): LaTeX in markdown rendered to inline SVG (matplotlib's
  mathtext), so the feedback HTML shows its math offline; :func:`drop_mathjax` removes the
  CDN script nbgrader's feedback template adds.
- :class:`StripQuizMetadata` (release): drops the authoring metadata ``cell.metadata["quiz"]``.
- :class:`StampQuizId` (release): writes the quiz id into ``metadata.courseutils.quiz``, so
  collecting refuses a notebook of another quiz.
- :class:`InstantiateGivens` (release): copies the givens into the hidden tests (exam mode:
  draws them from a secret first); a quiz without a givens cell is left unchanged.

:func:`nbgrader_env` wraps every call into nbgrader made by :mod:`courseutils.grading`.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator

import nbformat
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Integer, Unicode

from ..core.errors import CourseError
from .givens import GIVENS_ID, MARKER, draw_givens, inject_givens, parse_givens, read_secret, rewrite_givens

__all__ = ["QuizExecute", "HideTestOutputs", "RenderMath", "drop_mathjax", "StripQuizMetadata", "StampQuizId", "InstantiateGivens", "nbgrader_env"]


class QuizExecute(Execute):
    """nbgrader's Execute with a total time budget per notebook.

    Each cell may run ``timeout`` seconds (then it is interrupted and scores 0); once the
    notebook's cells have used ``total_timeout`` seconds (counted from the first cell, so a
    slow kernel start costs nothing), the remaining code cells are not run and get an error
    output, so their tests score 0 and the batch moves on.
    """

    total_timeout = Integer(300, help="Seconds the cells of one notebook may run in all.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._per_cell = self.timeout
        self._deadline = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self.timeout = self._per_cell

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        if self._deadline is None:
            self._deadline = time.monotonic() + self.total_timeout
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            cell.outputs = [nbformat.v4.new_output(
                "error", ename="TotalTimeoutError",
                evalue=f"not run: the notebook used its {self.total_timeout} s budget",
                traceback=[f"TotalTimeoutError: not run: the notebook used its {self.total_timeout} s budget"])]
            return cell, resources
        self.timeout = max(1, min(self._per_cell or math.inf, math.ceil(remaining)))
        return super().preprocess_cell(cell, resources, index)


class HideTestOutputs(NbGraderPreprocessor):
    """Feedback: a test cell shows one line saying which question failed and why, no traceback.

    Tracebacks quote the failing line (a hidden assertion), and a student's function may
    print the hidden inputs it was called with; neither may reach the feedback. A failing
    test cell ``qNN_test`` gets one error line: the question's number and title (its
    ``### QNN · Title`` heading), what failed (the error; a bare ``AssertionError`` is a
    hidden test that failed) and the question's hint, read from the instructor notebook
    ``<course_root>/source/<quiz>/<quiz>.ipynb`` when ``course_root`` is set.
    """

    course_root = Unicode("", help="Course root, to read the hints from source/; empty: no hints.").tag(config=True)

    def preprocess(self, nb, resources):
        self._titles, self._hints = _question_titles(nb), {}
        info = (resources or {}).get("nbgrader", {})
        if self.course_root and info.get("assignment") and info.get("notebook"):
            source = Path(self.course_root) / "source" / info["assignment"] / f"{info['notebook']}.ipynb"
            if source.is_file():
                self._hints = _question_hints(nbformat.read(str(source), as_version=4))
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and not is_solution(cell):
            outputs = []
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if errors:
                evalue = (str(errors[0].get("evalue", "")).splitlines() or [""])[0][:200]
                what = f"{errors[0].ename}: {evalue}" if evalue else (
                    "the hidden test failed (AssertionError)" if errors[0].ename == "AssertionError" else errors[0].ename)
                qid = str(cell.metadata.get("nbgrader", {}).get("grade_id", "")).split("_")[0]
                title = getattr(self, "_titles", {}).get(qid, qid.upper())
                hint = getattr(self, "_hints", {}).get(qid)
                line = f"✗ {title}: {what}" + (f". Hint: {hint}" if hint else "")
                outputs.append(nbformat.v4.new_output("error", ename=errors[0].ename, evalue=evalue,
                                                      traceback=[line]))
            elif any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs):
                outputs.append(nbformat.v4.new_output(
                    "stream", name="stdout", text="This test cell wrote to stderr, which nbgrader scores as 0.\n"))
            cell.outputs = outputs
        return cell, resources


def _question_titles(nb) -> dict[str, str]:
    """``{"q03": "Q03 · Title"}`` from the notebook's ``### Q03 · Title`` headings."""
    titles = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.match(r"^#+\s*(Q(\d+)\b.*)$", cell.source.split("\n", 1)[0].strip())
            if match:
                titles[f"q{match.group(2)}"] = match.group(1).strip()
    return titles


def _question_hints(nb) -> dict[str, str]:
    """``{"q03": hint}`` from the answer cells' ``quiz`` metadata of an instructor notebook."""
    hints = {}
    for cell in nb.cells:
        grade_id = str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))
        hint = cell.get("metadata", {}).get("quiz", {}).get("hint")
        if grade_id.endswith("_answer") and hint:
            hints[grade_id.split("_")[0]] = str(hint)
    return hints


MATH = re.compile(r"(?<!\\)\$\$(?P<display>.+?)(?<!\\)\$\$|(?<![\\$])\$(?P<inline>[^$\n]+?)(?<!\\)\$", re.S)
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.S)


@functools.lru_cache(maxsize=4096)
def math_svg(tex: str, display: bool = False) -> str | None:
    """``<img>`` tag holding ``tex`` typeset by matplotlib's mathtext as SVG, or ``None`` if it cannot.

    mathtext covers the TeX math the quizzes use (fractions, sub- and superscripts, Greek,
    ``\\text``, ``\\operatorname``); the glyphs are drawn as paths, so nothing is fetched
    when the page is shown.
    """
    import base64
    import io

    from matplotlib.figure import Figure

    fig = Figure()
    fig.text(0, 0, f"${_mathtext_dialect(tex.strip())}$", fontsize=13 if display else 11)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.01, transparent=True)
    except (ValueError, RuntimeError):  # mathtext's ParseFatalException is a ValueError
        return None
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    style = "display:block;margin:0.5em auto" if display else "vertical-align:middle"
    return f'<img class="math" style="{style}" alt="{html_escape(tex)}" src="data:image/svg+xml;base64,{data}">'


# LaTeX spellings mathtext does not know, and the ones it does (sizing commands dropped).
MATHTEXT_SPELLINGS = [(r"\\[td]frac(?![A-Za-z])", r"\\frac"), (r"\\(?:big|Big|bigg|Bigg)[lr]?(?![A-Za-z])", ""), (r"\\le(?![A-Za-z])", r"\\leq"),
                      (r"\\ge(?![A-Za-z])", r"\\geq"), (r"\\lVert(?![A-Za-z])", r"\\Vert"),
                      (r"\\rVert(?![A-Za-z])", r"\\Vert"), (r"\\qquad(?![A-Za-z])", r"\\quad\\quad"),
                      (r"\\frac(\d)(\w)", r"\\frac{\1}{\2}")]


def _mathtext_dialect(tex: str) -> str:
    """``tex`` rewritten into what matplotlib's mathtext parses (``\\le`` -> ``\\leq``, ``\\big`` dropped, ...)."""
    for pattern, replacement in MATHTEXT_SPELLINGS:
        tex = re.sub(pattern, replacement, tex)
    return tex


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def render_math(markdown: str) -> str:
    """``markdown`` with each ``$...$`` and ``$$...$$`` (outside code spans) replaced by :func:`math_svg`.

    A formula mathtext cannot typeset (matrices, for one) is left as its TeX source in a code span.
    """
    def one(match: re.Match) -> str:
        display = match.group("display") is not None
        tex = match.group("display") if display else match.group("inline")
        return math_svg(tex, display) or f"`{tex}`"

    out, last = [], 0
    for code in CODE_SPAN.finditer(markdown):
        out.append(MATH.sub(one, markdown[last:code.start()]))
        out.append(code.group(0))
        last = code.end()
    out.append(MATH.sub(one, markdown[last:]))
    return "".join(out)


class RenderMath(NbGraderPreprocessor):
    """Feedback: typeset the math of markdown cells server-side (:func:`render_math`), no MathJax needed."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown" and "$" in cell.source:
            cell.source = render_math(cell.source)
        return cell, resources


def drop_mathjax(page: str) -> str:
    """``page`` without the MathJax ``<script>`` tags nbconvert's template loads from a CDN."""
    page = re.sub(r"<script[^>]*src=\"https?://[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>", "", page, flags=re.I)
    return re.sub(r"<script type=\"text/x-mathjax-config\">.*?</script>", "", page, flags=re.S)


class StripQuizMetadata(NbGraderPreprocessor):
    """Release: drop the authoring metadata ``cell.metadata["quiz"]`` from every cell."""

    def preprocess_cell(self, cell, resources, index):
        cell.metadata.pop("quiz", None)
        return cell, resources


class StampQuizId(NbGraderPreprocessor):
    """Release: ``metadata.courseutils.quiz`` = the assignment (``NN_slug`` or ``NN_slug_exam_K``).

    Grade ids (``q01_test``) repeat across quizzes, so without it nothing in a student's
    notebook says which quiz it is (see :func:`courseutils.grading.submissions.notebook_quiz`).
    """

    def preprocess(self, nb, resources):
        quiz = (resources or {}).get("nbgrader", {}).get("assignment", "")
        if not quiz:
            raise CourseError("StampQuizId: nbgrader gave no assignment name")
        nb.metadata.setdefault("courseutils", {})["quiz"] = quiz
        return nb, resources


class InstantiateGivens(NbGraderPreprocessor):
    """Release: each hidden test marked ``# @givens`` gets its own copy of the givens.

    Runs first, before nbgrader saves the cells in the gradebook, so the copy is what
    autograding restores and runs (see :mod:`courseutils.grading.givens`). With
    ``secret_file`` set (exam), the givens named in the cell's ``quiz.draw`` metadata are
    first drawn anew from the secret and written into the released givens cell.
    """

    secret_file = Unicode("", help="File holding the exam secret; empty: keep the source's givens.").tag(config=True)

    def preprocess(self, nb, resources):
        quiz = (resources or {}).get("nbgrader", {}).get("assignment", "") or "quiz"
        cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == GIVENS_ID]
        marked = [c for c in nb.cells if c.cell_type == "code" and is_grade(c)
                  and any(line.strip() == MARKER for line in c.source.split("\n"))]
        if not cells:
            if marked:
                raise CourseError(f"{quiz}: a test cell has '{MARKER}' but there is no givens cell "
                                  f"(grade_id '{GIVENS_ID}')")
            return nb, resources
        if len(cells) > 1:
            raise CourseError(f"{quiz}: {len(cells)} givens cells; a quiz has one")
        cell = cells[0]
        nbg = cell.metadata.get("nbgrader", {})
        if not nbg.get("locked") or nbg.get("grade") or nbg.get("solution"):
            raise CourseError(f"{quiz}: the givens cell must be read-only (locked, neither grade nor solution)")
        values = parse_givens(cell.source, f"{quiz} givens cell")
        if self.secret_file:
            draw = cell.metadata.get("quiz", {}).get("draw", {})
            values = draw_givens(values, draw, read_secret(self.secret_file), quiz)
            cell.source = rewrite_givens(cell.source, values)
        for c in marked:
            c.source = inject_givens(c.source, values)
        return nb, resources


@functools.lru_cache(maxsize=1)
def _alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read in this process."""
    import nbgrader
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _cache_alembic_head() -> None:
    """Make nbgrader ask its database schema version once per process, without a subprocess.

    nbgrader runs the ``alembic heads`` script (one to several seconds) every time it opens
    the gradebook, which autograding does several times per student. The answer depends
    only on the installed nbgrader, so nbgrader.api's function is replaced by
    :func:`_alembic_head`, which reads the same revision with alembic's Python API.
    """
    import nbgrader.api as nbapi

    nbapi.get_alembic_version = _alembic_head


@contextlib.contextmanager
def nbgrader_env(**extra: str) -> Iterator[None]:
    """Environment for nbgrader and the kernels it starts, restored afterwards.

    This Python's ``bin/`` goes first on PATH (nbgrader runs the ``alembic`` script of its
    environment, missing from PATH when the venv is not activated), this courseutils is
    importable in the kernels, and ``extra`` variables are set.
    """
    src = str(Path(__file__).resolve().parents[2])
    saved = dict(os.environ)
    os.environ.update(extra)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), saved.get("PATH", "")])
    os.environ["PYTHONPATH"] = os.pathsep.join([src] + [p for p in saved.get("PYTHONPATH", "").split(os.pathsep) if p])
    _cache_alembic_head()
    try:
        with warnings.catch_warnings():
            # nbgrader's gradebook code trips SQLAlchemy 2 "not in session" warnings, and cells
            # it re-adds have no id; neither affects the grades.
            warnings.filterwarnings("ignore", message=".*not in session.*")
            warnings.filterwarnings("ignore", message="Cell is missing an id field")
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
