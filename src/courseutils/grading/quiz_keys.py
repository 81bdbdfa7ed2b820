"""Reading quiz notebooks and writing their instant-feedback keys.

A quiz is ``quizzes/source/NN_slug/NN_slug.ipynb`` (cell conventions in quizzes/README.md).
:func:`parse_quiz` turns it into :class:`Question` records and raises
:class:`~courseutils.core.errors.CourseError` naming the cell when a convention is broken.

Keys are derived by *executing* the instructor notebook in a fresh kernel
(:func:`execute_solutions`: solutions, check cells with feedback off, and every test
cell, so a key is only written for a notebook whose solutions pass its own tests), then
reading each answer variable and storing salted hashes of it (:func:`build_key`; what
is hashed and the acceptance rules are in :mod:`courseutils.quiz`). Each key records
:func:`source_digest` of the notebook's code cells, so a stale key is detected without
running anything (:func:`key_in_sync`).
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.utils import is_grade, is_solution

from ..core.errors import CourseError
from ..core.io import atomic_path
from . import quiz as quizmod
from .givens import with_source_givens
from .nbgrader_plugins import nbgrader_env

__all__ = ["Question", "course_root", "course_root_origin", "quiz_ids", "is_exam_variant", "EXAM_VARIANT", "parse_quiz", "source_digest", "execute_solutions",
           "build_key", "write_key", "key_in_sync", "KEY_FORMAT"]

KEY_FORMAT = 1
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The nbgrader course root: ``root`` if given, else found from the current directory first.

    Without ``root``, the first of ``./quizzes``, ``.`` and the ``quizzes/`` next to the
    installed package's ``src/`` that holds ``nbgrader_config.py`` is used, so a checkout
    you work in wins over the one the package was installed from (two checkouts may share
    one virtualenv). :func:`course_root_origin` says which one was taken.
    """
    return _find_course_root(root)[0]


def course_root_origin(root: str | os.PathLike | None = None) -> str:
    """``"<path> (why it was chosen)"`` for the course root :func:`course_root` picks."""
    path, why = _find_course_root(root)
    return f"{path} ({why})"


def _find_course_root(root: str | os.PathLike | None) -> tuple[Path, str]:
    if root is not None:
        path = Path(root).expanduser().resolve()
        if not (path / "nbgrader_config.py").is_file():
            raise CourseError(f"root={str(root)!r} has no nbgrader_config.py; give the quizzes/ folder")
        return path, "from --root"
    candidates = [(Path.cwd() / "quizzes", "quizzes/ in the current directory"),
                  (Path.cwd(), "the current directory"),
                  (Path(__file__).resolve().parents[3] / "quizzes",
                   "next to the installed package; no course root in the current directory")]
    for path, why in candidates:
        if (path / "nbgrader_config.py").is_file():
            return path.resolve(), why
    raise CourseError(f"no nbgrader course root found (tried {[str(p) for p, _ in candidates]}); pass --root")


EXAM_VARIANT = re.compile(r"^(?P<quiz>\d\d_\w+?)_exam_(?P<k>\d+)$")


def is_exam_variant(quiz: str) -> bool:
    """Whether ``quiz`` names an exam variant (``NN_slug_exam_K``, written by ``release --exam``)."""
    return EXAM_VARIANT.match(quiz) is not None


def quiz_ids(root: str | os.PathLike | None = None, exams: bool = False) -> list[str]:
    """Quizzes under ``source/``: folders ``NN_slug`` holding ``NN_slug.ipynb``.

    Exam variants (``NN_slug_exam_K``, generated and git-ignored) only with ``exams=True``.
    """
    source = course_root(root) / "source"
    found = sorted(p.name for p in source.glob("[0-9][0-9]_*") if (p / f"{p.name}.ipynb").is_file())
    return [q for q in found if exams or not is_exam_variant(q)]


def _select(quiz: str, root: Path, exams: bool = False) -> list[str]:
    """``quiz`` checked against ``source/``; ``"all"``: every quiz (and, with ``exams``, every exam variant).

    A named exam variant is always accepted when its source exists.
    """
    if not (Path(root) / "source").is_dir():
        raise CourseError(f"course root {root} has no source/ folder (the instructor notebooks); "
                          f"pass --root the quizzes/ folder of your course")
    if quiz == "all":
        found = quiz_ids(root, exams)
        if not found:
            raise CourseError(f"no quiz under {Path(root) / 'source'} (expected source/NN_slug/NN_slug.ipynb)")
        return found
    known = quiz_ids(root, exams=True)
    if quiz not in known:
        raise CourseError(f"quiz={quiz!r} is not under {root / 'source'}; allowed: 'all' or one of {known}")
    return [quiz]


def _source_path(quiz: str, root: Path) -> Path:
    return root / "source" / quiz / f"{quiz}.ipynb"


# --------------------------------------------------------------------------- parsing a quiz
@dataclass(frozen=True)
class Question:
    """One question: its answer, instant-check and graded test cells (indices into the notebook)."""
    qid: str                 # "q03"
    kind: str                # choice | bool | number | function
    variable: str            # the name passed to check(): answer_q03, or the function's name
    meta: dict = field(repr=False)   # the answer cell's "quiz" metadata (tol, options, hint, wrong)
    answer_cell: int = 0
    check_cell: int = 0
    test_cell: int = 0
    visible_test: str = field(default="", repr=False)
    hidden_test: str = field(default="", repr=False)


def _grade_id(cell) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")


def _split_hidden(source: str, where: str) -> tuple[str, str]:
    """(visible part, hidden part) of a test cell with exactly one hidden region."""
    lines = source.split("\n")
    begins = [i for i, line in enumerate(lines) if line.strip() == HIDDEN_BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == HIDDEN_END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise CourseError(f"{where}: needs exactly one '{HIDDEN_BEGIN}' ... '{HIDDEN_END}' region")
    hidden = "\n".join(lines[begins[0] + 1:ends[0]])
    visible = "\n".join(lines[:begins[0]] + lines[ends[0] + 1:])
    if not hidden.strip():
        raise CourseError(f"{where}: the hidden test region is empty")
    return visible, hidden


def _parse_check(source: str, quiz: str, where: str) -> tuple[str, str]:
    """``check("<quiz>", "qNN", name)`` -> (qid, name)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CourseError(f"{where}: check cell does not parse ({exc})") from exc
    calls = [n.value for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    ok = (len(tree.body) == 1 and len(calls) == 1 and isinstance(calls[0].func, ast.Name)
          and calls[0].func.id == "check" and len(calls[0].args) == 3
          and all(isinstance(a, ast.Constant) for a in calls[0].args[:2])
          and isinstance(calls[0].args[2], ast.Name))
    if not ok:
        raise CourseError(f"{where}: the cell after an answer must be exactly check({quiz!r}, 'qNN', name)")
    quiz_arg, qid = calls[0].args[0].value, calls[0].args[1].value
    if quiz_arg != quiz:
        raise CourseError(f"{where}: check() names quiz {quiz_arg!r}, but the notebook is {quiz!r}")
    return qid, calls[0].args[2].id


def _check_meta(meta: Any, where: str) -> None:
    if not isinstance(meta, dict) or meta.get("kind") not in quizmod.KINDS:
        raise CourseError(f"{where}: metadata 'quiz' needs kind in {quizmod.KINDS}; got {meta!r}")
    kind = meta["kind"]
    if kind == "number" and not (isinstance(meta.get("tol"), (int, float)) and meta["tol"] > 0):
        raise CourseError(f"{where}: a number question needs 'tol' > 0; got {meta.get('tol')!r}")
    if kind == "choice" and not (isinstance(meta.get("options"), str)
                                 and re.fullmatch(r"[a-z]{2,8}", meta["options"])):
        raise CourseError(f"{where}: a choice question needs 'options' like 'abcd'; got {meta.get('options')!r}")
    if kind == "function" and not isinstance(meta.get("wrong"), str):
        raise CourseError(f"{where}: a function question needs 'wrong': a plausible wrong implementation")


def parse_quiz(nb, quiz: str) -> list[Question]:
    """The questions of a quiz notebook, checked against the conventions of quizzes/README.md.

    An exam variant (:func:`is_exam_variant`) has no check cells (``check_cell`` is -1).
    Raises :class:`CourseError` naming the cell when a convention is broken.
    """
    checks = not is_exam_variant(quiz)
    cells = nb["cells"]
    questions: list[Question] = []
    for i, cell in enumerate(cells):
        nbg = cell.get("metadata", {}).get("nbgrader", {})
        if not (cell["cell_type"] == "code" and nbg.get("solution") and not nbg.get("grade")):
            continue
        gid = nbg.get("grade_id", "")
        where = f"{quiz} cell {i} ({gid})"
        m = re.fullmatch(r"(q\d\d)_answer", gid)
        if not m:
            raise CourseError(f"{where}: an answer cell's grade_id must be 'qNN_answer'")
        qid = m.group(1)
        meta = cell.get("metadata", {}).get("quiz")
        _check_meta(meta, where)
        code_after = [j for j in range(i + 1, len(cells)) if cells[j]["cell_type"] == "code"][:2 if checks else 1]
        if len(code_after) < (2 if checks else 1):
            raise CourseError(f"{where}: needs a check cell and a test cell after it" if checks
                              else f"{where}: needs a test cell after it")
        if checks:
            j, k = code_after
            check_qid, variable = _parse_check(cells[j]["source"], quiz, f"{quiz} cell {j}")
            if check_qid != qid:
                raise CourseError(f"{quiz} cell {j}: check() names {check_qid!r} after the answer cell of {qid!r}")
        else:   # an exam variant: no check cell; the variable is answer_qNN or the function defined
            j, k = -1, code_after[0]
            defined = re.search(r"^def (\w+)\(", cell["source"], re.M)
            variable = defined.group(1) if meta["kind"] == "function" and defined else f"answer_{qid}"
        test = cells[k]
        tmeta = test.get("metadata", {}).get("nbgrader", {})
        twhere = f"{quiz} cell {k} ({_grade_id(test)})"
        if not (tmeta.get("grade") and not tmeta.get("solution") and tmeta.get("locked")
                and tmeta.get("grade_id") == f"{qid}_test" and float(tmeta.get("points", 0)) == 1.0):
            raise CourseError(f"{twhere}: the test of {qid} must be a locked grade cell "
                              f"'{qid}_test' worth 1 point")
        visible, hidden = _split_hidden(test["source"], twhere)
        if meta["kind"] != "function" and variable != f"answer_{qid}":
            raise CourseError(f"{quiz} cell {j}: the answer variable of {qid} must be 'answer_{qid}'")
        if meta["kind"] == "function" and not re.search(r"^\s*assert\b", visible, re.M):
            raise CourseError(f"{twhere}: a function question needs a visible example assert")
        questions.append(Question(qid, meta["kind"], variable, dict(meta), i, j, k, visible, hidden))
    expected = [f"q{n:02d}" for n in range(1, len(questions) + 1)]
    if [q.qid for q in questions] != expected:
        raise CourseError(f"{quiz}: questions must be q01, q02, ... in order; found {[q.qid for q in questions]}")
    graded = [c for c in cells if c["cell_type"] == "code" and is_grade(c) and not is_solution(c)]
    if len(graded) != len(questions):
        raise CourseError(f"{quiz}: {len(graded)} graded test cells for {len(questions)} questions")
    return questions


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def source_digest(nb) -> str:
    """SHA-256 of what the key depends on: every code cell's source and quiz/nbgrader ids."""
    payload = [[c["source"], _grade_id(c), c.get("metadata", {}).get("quiz")]
               for c in nb["cells"] if c["cell_type"] == "code"]
    text = json.dumps([KEY_FORMAT, quizmod.GRID_STEPS, payload], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- keys
_DUMP_MARK = "@@QUIZ_ANSWERS@@"


def _dump_cell(questions: list[Question]) -> str:
    pairs = ", ".join(f"{q.qid!r}: {q.variable}" for q in questions)
    return (
        "import json as _json\n"
        "def _enc(v):\n"
        "    if callable(v): return ['callable', None]\n"
        "    if isinstance(v, str): return ['str', v]\n"
        "    if type(v).__name__ in ('bool', 'bool_'): return ['bool', bool(v)]\n"
        "    try: return ['float', float(v)]\n"
        "    except Exception: return ['other', repr(v)]\n"
        f"print({_DUMP_MARK!r} + _json.dumps({{k: _enc(v) for k, v in {{{pairs}}}.items()}}))\n"
    )


def execute_solutions(quiz: str, root: str | os.PathLike | None = None,
                      timeout: int = 120) -> tuple[list[Question], dict[str, Any], Any]:
    """Run the instructor notebook top to bottom in a fresh kernel.

    Hidden tests marked ``# @givens`` run with the source's givens, as the self-study release
    writes them. Returns (questions, answers, executed notebook); ``answers[qid]`` is the value of the
    answer variable (``None`` for function questions). Raises :class:`CourseError` when a
    cell fails or a test cell writes to stderr (nbgrader would score it 0).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    root = course_root(root)
    path = _source_path(quiz, root)
    nb = _read(path)
    questions = parse_quiz(nb, quiz)
    run = with_source_givens(nb)        # hidden tests marked `# @givens` get the givens cell's values
    run.cells.append(nbformat.v4.new_code_cell(_dump_cell(questions)))
    client = NotebookClient(run, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with nbgrader_env(COURSE_QUIZ_FEEDBACK="off"):
        try:
            client.execute()
        except CellExecutionError as exc:
            raise CourseError(f"{quiz}: the instructor notebook fails when executed: {exc}") from exc
    for q in questions:
        if any(o.output_type == "stream" and o.name == "stderr" for o in run.cells[q.test_cell].outputs):
            raise CourseError(f"{quiz}: the test cell of {q.qid} writes to stderr; silence it in the setup cell")
    text = "".join(o.get("text", "") for o in run.cells[-1].outputs if o.output_type == "stream")
    raw = json.loads(text.split(_DUMP_MARK, 1)[1])
    answers: dict[str, Any] = {}
    for q in questions:
        tag, value = raw[q.qid]
        expected = {"choice": "str", "bool": "bool", "number": "float", "function": "callable"}[q.kind]
        if tag != expected:
            raise CourseError(f"{quiz} {q.qid}: kind {q.kind!r} but {q.variable} is {tag} {value!r}")
        if q.kind == "choice" and (len(value) != 1 or value not in q.meta["options"]):
            raise CourseError(f"{quiz} {q.qid}: answer {value!r} is not one of the options {q.meta['options']!r}")
        if q.kind == "number" and not math.isfinite(value):
            raise CourseError(f"{quiz} {q.qid}: answer {value!r} is not finite")
        answers[q.qid] = value
    return questions, answers, run


def build_key(quiz: str, root: str | os.PathLike | None = None,
              solved: tuple[list[Question], dict[str, Any]] | None = None) -> tuple[dict, dict[str, Any]]:
    """The key of ``quiz`` (hashes only) and the plain answers it was made from.

    ``solved`` = ``(questions, answers)`` from :func:`execute_solutions` saves running the
    notebook again.
    """
    root = course_root(root)
    nb = _read(_source_path(quiz, root))
    digest = source_digest(nb)
    questions, answers = solved if solved is not None else execute_solutions(quiz, root)[:2]
    entries: dict[str, dict] = {}
    for q in questions:
        entry: dict[str, Any] = {"kind": q.kind}
        if q.meta.get("hint"):
            entry["hint"] = q.meta["hint"]
        if q.kind == "function":
            entry.update(name=q.variable, visible_test=q.visible_test.strip() + "\n")
        else:
            salt = hashlib.sha256(f"{quiz}/{q.qid}/{digest}".encode()).hexdigest()[:16]
            entry.update(salt=salt, hashes=quizmod.answer_hashes(q.kind, answers[q.qid], salt, q.meta.get("tol")))
            if q.kind == "choice":
                entry["options"] = q.meta["options"]
            if q.kind == "number":
                entry["tol"] = q.meta["tol"]
        entries[q.qid] = entry
    key = {"quiz": quiz, "format": KEY_FORMAT, "source_digest": digest,
           "generated_by": "python -m courseutils.grading keys (make quiz-keys); hashes only, no answers",
           "questions": entries}
    return key, answers


def write_key(key: dict, out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``key`` to ``<out_dir>/<quiz>.json`` (default: the package's key directory)."""
    out = Path(out_dir) if out_dir is not None else quizmod.keys_dir()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{key['quiz']}.json", "out_dir") as tmp:
        tmp.write_text(json.dumps(key, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return out / f"{key['quiz']}.json"


def key_in_sync(quiz: str, root: str | os.PathLike | None = None) -> bool:
    """Whether the shipped key of ``quiz`` was generated from the current source notebook."""
    path = quizmod.keys_dir() / f"{quiz}.json"
    if not path.is_file():
        return False
    stored = json.loads(path.read_text(encoding="utf-8"))
    return stored.get("source_digest") == source_digest(_read(_source_path(quiz, course_root(root))))
