"""Checks that keep the quizzes honest: option balance, repeats, leaks, answer types.

The course's quiz rules (COURSE.md, "Quizzes"; issue 17) say a quiz measures understanding,
not test-taking skill. Each rule is one function here, run on :class:`Item` records (one
per question) so tests can feed it made-up questions, and :func:`load_items` builds the
records from the instructor notebooks by executing them in this process (no kernel, a
few seconds for the whole course)::

    python -m courseutils.grading audit [--quiz all|NN_slug] [--no-types]

- :func:`option_balance`: across all multiple-choice questions the right option is the
  longest (in characters) in at most 40 % of them, and each letter is right in 15-35 %.
- :func:`repeats`: no two questions of different quizzes ask the same thing. Text
  similarity (difflib's ratio of the prompts' words) alone misses a repeat reworded, so a pair is
  also flagged when it is of the same kind with equal answers (numbers within tolerance,
  or right options whose texts are alike) and its prompts share some text.
- :func:`leaks`: no visible cell (what the student copy shows: markdown, answer cells
  without their solution, the visible part of test cells) holds the value of another
  question's number answer, within that question's tolerance.
- :func:`answer_types`: each question's solution still scores 1 when it is given as a
  Python, numpy or torch number: number answers as ``float``, ``np.float64``, a 0-d array
  and a 0-d torch tensor (and ``int``, ``np.int64``, an int tensor when whole); function
  questions with their numeric results converted the same way. Both the graded test cell
  (visible and hidden parts) and the instant check must accept each form.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import difflib
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..core.errors import CourseError
from . import quiz as quizmod
from .givens import with_givens
from .quiz_keys import HIDDEN_BEGIN, HIDDEN_END, Question, _read, _select, _source_path, course_root, parse_quiz

__all__ = ["Item", "VisibleCell", "QuizRecord", "load_quiz", "load_items", "option_balance", "BalanceReport",
           "repeats", "Repeat", "leaks", "Leak", "answer_types", "TypeFailure", "numbers_in", "audit_report",
           "one_significant_digit", "MAX_LONGEST_SHARE", "LETTER_SHARE", "TEXT_RATIO", "ANSWER_TEXT_RATIO", "SHARED_TEXT_RATIO"]

MAX_LONGEST_SHARE = 0.40          # right option longest in at most this share of MC questions
LETTER_SHARE = (0.15, 0.35)       # each letter right in this share of MC questions
TEXT_RATIO = 0.60                 # prompts at least this alike (difflib ratio of words) ask the same thing
ANSWER_TEXT_RATIO = 0.60          # right options at least this alike count as "equal answers"
SHARED_TEXT_RATIO = 0.20          # equal answers only count with at least this much shared prompt text

_OPTION = re.compile(r"^\s*-\s*\*\*\(([a-z])\)\*\*\s*(.*\S)\s*$")
_TITLE = re.compile(r"^###\s*Q\d\d\s*·\s*(.*)$", re.M)
_BOILERPLATE = re.compile(r"^(\*\(.*\)\*|Set `answer_q\d\d`.*|Complete `\w+` below.*|True or false\?)$")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class VisibleCell:
    """One cell as the student copy shows it; ``owner`` is the question it belongs to (or ``None``)."""
    quiz: str
    index: int
    owner: str | None
    role: str                 # prompt | answer | test | other
    text: str
    is_code: bool


@dataclass(frozen=True)
class Item:
    """One question with what the checks need: its prompt, options, answer and tolerance."""
    quiz: str
    qid: str
    kind: str                              # choice | bool | number | function
    title: str
    prompt: str                            # the prompt without the boilerplate lines
    options: dict = field(default_factory=dict)   # letter -> option text (choice only)
    answer: Any = None                     # letter, bool, float; None for a function
    tol: float | None = None

    @property
    def label(self) -> str:
        return f"{self.quiz} {self.qid.upper()}"


@dataclass
class QuizRecord:
    """A quiz as the checks see it: its items, visible cells and (when executed) type results."""
    quiz: str
    items: list[Item]
    cells: list[VisibleCell]
    type_failures: list["TypeFailure"] = field(default_factory=list)


def _prompt_parts(markdown: str) -> tuple[str, str, dict[str, str]]:
    """(title, prompt text without boilerplate, options) of a question's prompt cell."""
    m = _TITLE.search(markdown)
    title = m.group(1).strip() if m else ""
    options, lines = {}, []
    for line in markdown.splitlines():
        opt = _OPTION.match(line)
        if opt:
            options[opt.group(1)] = opt.group(2)
            continue
        if _TITLE.match(line) or _BOILERPLATE.match(line.strip()):
            continue
        if line.strip():
            lines.append(line.strip())
    return title, " ".join(lines), options


def _strip_solution(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
            continue
        if line.strip() == "### END SOLUTION":
            inside = False
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def _strip_hidden(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        if line.strip() == HIDDEN_BEGIN:
            inside = True
        elif line.strip() == HIDDEN_END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def visible_cells(nb, quiz: str, questions: list[Question]) -> list[VisibleCell]:
    """Every cell as the released notebook shows it (solutions and hidden tests removed)."""
    roles: dict[int, tuple[str, str]] = {}
    for q in questions:
        roles[q.answer_cell - 1] = (q.qid, "prompt")
        roles[q.answer_cell] = (q.qid, "answer")
        roles[q.check_cell] = (q.qid, "check")
        roles[q.test_cell] = (q.qid, "test")
    cells = []
    for i, cell in enumerate(nb.cells):
        owner, role = roles.get(i, (None, "other"))
        text = _strip_hidden(_strip_solution(cell.source))
        cells.append(VisibleCell(quiz, i, owner, role, text, cell.cell_type == "code"))
    return cells


# --------------------------------------------------------------------------- executing a quiz in-process
@contextlib.contextmanager
def _quiet_sandbox() -> Iterator[None]:
    """Run quiz cells here without leaving their global switches behind (warnings, logging, env)."""
    saved_env = dict(os.environ)
    saved_disable = logging.root.manager.disable
    with warnings.catch_warnings():
        try:
            yield
        finally:
            logging.disable(saved_disable)
            os.environ.clear()
            os.environ.update(saved_env)


def _exec(source: str, namespace: dict, where: str) -> None:
    exec(compile(source, where, "exec"), namespace)


def _number_forms(value: float) -> list[tuple[str, Any]]:
    """The forms a student may give a number answer in: Python, numpy, torch (if installed)."""
    import numpy as np

    forms: list[tuple[str, Any]] = [("float", float(value)), ("np.float64", np.float64(value)),
                                    ("np.array (0-d)", np.array(float(value)))]
    whole = float(value).is_integer()
    if whole:
        forms += [("int", int(value)), ("np.int64", np.int64(int(value)))]
    torch = _torch()
    if torch is not None:
        forms.append(("torch.tensor", torch.tensor(float(value), dtype=torch.float64)))
        if whole:
            forms.append(("torch.tensor (int64)", torch.tensor(int(value), dtype=torch.int64)))
    return forms


def _torch():
    try:
        import torch
    except ImportError:  # the checks still run, without the torch forms
        return None
    return torch


def _converters() -> list[tuple[str, Callable[[Any], Any]]]:
    """Ways to turn a function's numeric result into another library's number."""
    import numpy as np

    def to_numpy(x):
        return np.int64(x) if isinstance(x, int) else np.float64(x)

    convs = [("numpy scalars", to_numpy), ("0-d arrays", lambda x: np.array(x))]
    torch = _torch()
    if torch is not None:
        convs.append(("torch scalars", lambda x: torch.tensor(x, dtype=torch.int64 if isinstance(x, int)
                                                             else torch.float64)))
    return convs


def _convert_result(result: Any, conv: Callable[[Any], Any]) -> Any:
    """``result`` with every plain Python number (not bool) in it, or in a tuple of it, converted."""
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return conv(result)
    if isinstance(result, tuple):
        return tuple(_convert_result(r, conv) for r in result)
    return result


def _wrap(func: Callable, conv: Callable[[Any], Any]) -> Callable:
    def wrapped(*args, **kwargs):
        return _convert_result(func(*args, **kwargs), conv)
    wrapped.__name__ = getattr(func, "__name__", "wrapped")
    return wrapped


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__


def _run_quiz(nb, quiz: str, questions: list[Question], check_types: bool) -> tuple[dict, list["TypeFailure"]]:
    """Execute the instructor notebook here; returns (answers, type failures).

    Runs the setup cell and every later code cell except the check cells (the install
    cell before setup never runs). At each graded test cell, when ``check_types``, the
    test also runs on copies of the namespace where the answer is given in other forms.
    """
    setup = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "setup"]
    if len(setup) != 1:
        raise CourseError(f"{quiz}: needs exactly one setup cell (grade_id 'setup')")
    by_test = {q.test_cell: q for q in questions}
    checks = {q.check_cell for q in questions}
    answers: dict[str, Any] = {}
    failures: list[TypeFailure] = []
    ns: dict[str, Any] = {"__name__": f"quiz_{quiz}"}
    with _quiet_sandbox():
        for i, cell in enumerate(nb.cells):
            if i < setup[0] or cell.cell_type != "code" or i in checks:
                continue
            source = _strip_markers(cell.source)
            q = by_test.get(i)
            if q is not None:
                value = ns.get(q.variable)
                answers[q.qid] = None if q.kind == "function" else (
                    value if q.kind in ("choice", "bool") else float(value))
                if check_types and q.kind in ("number", "function"):
                    failures += _type_failures(quiz, q, value, source, ns)
            try:
                _exec(source, ns, f"<{quiz} cell {i}>")
            except Exception as exc:
                raise CourseError(f"{quiz} cell {i}: the instructor notebook fails in-process ({_error(exc)})") from exc
    return answers, failures


def _strip_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n")
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION", HIDDEN_BEGIN, HIDDEN_END))


def _type_failures(quiz: str, q: Question, value: Any, test_source: str, ns: dict) -> list["TypeFailure"]:
    out = []
    if q.kind == "number":
        salt = "audit"
        entry = {"kind": "number", "tol": q.meta["tol"], "salt": salt,
                 "hashes": quizmod.answer_hashes("number", float(value), salt, q.meta["tol"])}
        variants = [(name, form, form) for name, form in _number_forms(float(value))]
    else:
        entry = {"kind": "function", "name": q.variable, "visible_test": q.visible_test}
        variants = [(name, _wrap(value, conv), _wrap(value, conv)) for name, conv in _converters()]
    for name, in_test, in_check in variants:
        trial = copy.copy(ns)
        trial[q.variable] = in_test
        try:
            _exec(test_source, trial, f"<{quiz} {q.qid} test with {name}>")
        except Exception as exc:
            out.append(TypeFailure(quiz, q.qid, q.kind, name, "graded test", _error(exc)))
        ok, message = quizmod.judge(entry, in_check)
        if not ok:
            out.append(TypeFailure(quiz, q.qid, q.kind, name, "instant check", message))
    return out


def load_quiz(quiz: str, root: str | os.PathLike | None = None, check_types: bool = True) -> QuizRecord:
    """The :class:`QuizRecord` of one quiz under ``root``/source (executes the notebook here)."""
    root = course_root(root)
    nb = _read(_source_path(quiz, root))
    questions = parse_quiz(nb, quiz)
    answers, failures = _run_quiz(with_givens(nb, quiz), quiz, questions, check_types)
    items = []
    for q in questions:
        title, prompt, options = _prompt_parts(nb.cells[q.answer_cell - 1].source)
        items.append(Item(quiz, q.qid, q.kind, title, prompt, options, answers.get(q.qid), q.meta.get("tol")))
    return QuizRecord(quiz, items, visible_cells(nb, quiz, questions), failures)


def load_items(root: str | os.PathLike | None = None, quiz: str = "all",
               check_types: bool = True) -> list[QuizRecord]:
    """:func:`load_quiz` for ``quiz`` (``"all"``: every quiz under source/)."""
    root = course_root(root)
    return [load_quiz(q, root, check_types) for q in _select(quiz, root)]


# --------------------------------------------------------------------------- option balance
@dataclass(frozen=True)
class BalanceReport:
    """Where the right options of the multiple-choice questions sit."""
    n: int
    longest_correct: list[str]            # labels of questions whose right option is the longest
    letters: dict[str, int]               # letter -> how many questions it is right in
    problems: list[str]

    @property
    def longest_share(self) -> float:
        return len(self.longest_correct) / self.n if self.n else 0.0

    def letter_shares(self) -> dict[str, float]:
        return {k: v / self.n for k, v in sorted(self.letters.items())} if self.n else {}

    @property
    def ok(self) -> bool:
        return not self.problems


def option_balance(items: Iterable[Item], max_longest: float = MAX_LONGEST_SHARE,
                   letter_share: tuple[float, float] = LETTER_SHARE) -> BalanceReport:
    """Share of MC questions whose right option is the longest, and of each right letter.

    A right option tied for the longest counts as the longest. Letters are those offered
    by any question (an ``abcd`` question offers a to d).
    """
    mc = [it for it in items if it.kind == "choice"]
    longest, letters = [], {}
    for it in mc:
        if not it.options or it.answer not in it.options:
            raise CourseError(f"{it.label}: the prompt lists options {sorted(it.options)}, answer {it.answer!r}")
        for letter in it.options:
            letters.setdefault(letter, 0)
        letters[it.answer] += 1
        if len(it.options[it.answer]) >= max(len(t) for t in it.options.values()):
            longest.append(it.label)
    problems = []
    n = len(mc)
    if n and len(longest) / n > max_longest:
        problems.append(f"the right option is the longest in {len(longest)} of {n} multiple-choice questions "
                        f"({len(longest) / n:.0%} > {max_longest:.0%})")
    for letter, count in sorted(letters.items()):
        share = count / n
        if not letter_share[0] <= share <= letter_share[1]:
            problems.append(f"({letter}) is right in {count} of {n} ({share:.0%}, allowed "
                            f"{letter_share[0]:.0%}-{letter_share[1]:.0%})")
    return BalanceReport(n, longest, letters, problems)


# --------------------------------------------------------------------------- repeats
@dataclass(frozen=True)
class Repeat:
    """Two questions of different quizzes that ask the same thing."""
    a: str
    b: str
    text_ratio: float
    reason: str

    def __str__(self) -> str:
        return f"{self.a} ~ {self.b}: {self.reason} (prompt ratio {self.text_ratio:.2f})"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[`*$\\]", "", text)).strip().lower()


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", _norm(text))


def _ratio(a: str, b: str) -> float:
    """difflib's ratio of the two texts' word sequences (words, not characters: two unrelated
    English sentences share many letters but few words in order; in the quizzes of issue 17
    the median over question pairs is 0.07, the repeats 0.33-0.53)."""
    return difflib.SequenceMatcher(None, _words(a), _words(b), autojunk=False).ratio()


def _equal_answers(x: Item, y: Item, answer_ratio: float) -> str | None:
    """Why ``x`` and ``y`` have equal answers, or ``None``."""
    if x.kind != y.kind:
        return None
    if x.kind == "number" and x.answer is not None and y.answer is not None:
        tol = min(x.tol or 0.0, y.tol or 0.0)
        if abs(x.answer - y.answer) <= tol:
            return f"both numbers with answer {x.answer:g}"
    if x.kind == "choice" and x.answer in x.options and y.answer in y.options:
        r = _ratio(x.options[x.answer], y.options[y.answer])
        if r >= answer_ratio:
            return f"both multiple choice with alike right options (ratio {r:.2f})"
    if _norm(x.title) and _norm(x.title) == _norm(y.title):
        return f"same title {x.title!r}"
    return None


def repeats(items: Iterable[Item], text_ratio: float = TEXT_RATIO, answer_ratio: float = ANSWER_TEXT_RATIO,
            shared_ratio: float = SHARED_TEXT_RATIO) -> list[Repeat]:
    """Pairs of questions from different quizzes that ask the same thing.

    Flagged when their prompts are alike (difflib ratio >= ``text_ratio``), or when they
    are of the same kind with equal answers (numbers within the smaller tolerance, right
    options alike at >= ``answer_ratio``, or the same title) and their prompts still share
    some text (ratio >= ``shared_ratio``, so two unrelated computations that happen to
    give 2.0 are not a repeat).
    """
    items = list(items)
    found = []
    for i, x in enumerate(items):
        for y in items[i + 1:]:
            if x.quiz == y.quiz:
                continue
            why = _equal_answers(x, y, answer_ratio)
            px, py = _words(x.prompt), _words(y.prompt)
            if not why and difflib.SequenceMatcher(None, px, py, autojunk=False).quick_ratio() < text_ratio:
                continue  # quick_ratio bounds ratio from above: skip the slow exact ratio
            r = _ratio(x.prompt, y.prompt)
            if r >= text_ratio:
                found.append(Repeat(x.label, y.label, r, "alike prompts"))
            elif why and r >= shared_ratio:
                found.append(Repeat(x.label, y.label, r, why))
    return found


# --------------------------------------------------------------------------- leaks
@dataclass(frozen=True)
class Leak:
    """A visible cell that shows the value of another question's answer."""
    answer_of: str         # the question whose answer shows
    value: float
    shown_in: str          # "quiz QNN prompt" etc.
    text: str              # the number as written

    def __str__(self) -> str:
        return f"{self.shown_in} shows {self.text}, the answer of {self.answer_of} ({self.value:g})"


_MD_NUMBER = re.compile(r"(?<![\w.])([-−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?(?![\w])")


def _const_value(node: ast.AST) -> float | None:
    """The value of a constant arithmetic expression (``-2 / 3``, ``2.0 ** -7``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _const_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        a, b = _const_value(node.left), _const_value(node.right)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Pow) and abs(b) > 64:
            return None
        try:
            return {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                    ast.Div: lambda: a / b, ast.Pow: lambda: float(a ** b)}[type(node.op)]()
        except (ZeroDivisionError, OverflowError, TypeError):
            return None
    return None


def numbers_in(text: str, is_code: bool) -> list[tuple[str, float]]:
    """Numbers a reader sees in a cell: (as written, value).

    Code: every numeric constant and every constant arithmetic expression (``1 / 3``,
    ``-2 / 3``), read with ``ast``. Markdown: decimal numbers and fractions ``a/b``.
    """
    out: list[tuple[str, float]] = []
    if is_code:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            is_code = False
        else:
            for node in ast.walk(tree):
                v = _const_value(node)
                if v is not None:
                    out.append((ast.get_source_segment(text, node) or ast.unparse(node), v))
            return out
    for m in _MD_NUMBER.finditer(text):
        num = float(m.group(1).replace("−", "-"))
        out.append((m.group(1), num))
        if m.group(2) and float(m.group(2)) != 0:
            out.append((m.group(0), num / float(m.group(2))))
    return out


def one_significant_digit(value: float) -> bool:
    """Whether ``value`` is ``d * 10**k`` with one digit ``d`` (0, 2, 0.5, 400): too common to hide."""
    if value == 0:
        return True
    mantissa = abs(value) / 10 ** math.floor(math.log10(abs(value)))
    return abs(mantissa - round(mantissa)) < 1e-9


def leaks(records: Iterable[QuizRecord],
          trivial: Callable[[float], bool] | None = one_significant_digit) -> list[Leak]:
    """Visible cells that show another question's number answer (within its tolerance).

    Only cells of the same quiz are searched (the quiz a student has open). Answers for
    which ``trivial(value)`` holds are skipped: by default those with one significant
    digit (2, 0.5, 4), which a quiz cannot avoid writing somewhere (a matrix entry, an
    exponent); an answer such as 4.5, 448 or 1/3 can and must stay out of sight.
    """
    found = []
    for rec in records:
        for it in rec.items:
            if it.kind != "number" or it.answer is None or (trivial and trivial(it.answer)):
                continue
            for cell in rec.cells:
                if cell.owner == it.qid or cell.role == "check":
                    continue
                where = f"{rec.quiz} {cell.owner.upper()} {cell.role}" if cell.owner else f"{rec.quiz} cell {cell.index}"
                seen = set()
                for text, v in numbers_in(cell.text, cell.is_code):
                    if abs(v - it.answer) <= it.tol and text not in seen:
                        seen.add(text)
                        found.append(Leak(it.label, it.answer, where, text))
    return _outermost(found)


def _outermost(found: list[Leak]) -> list[Leak]:
    """Drop a leak whose text is part of a longer leaked expression in the same cell (``3`` of ``1 / 3``)."""
    keep = []
    for lk in found:
        longer = [o for o in found if o is not lk and o.shown_in == lk.shown_in and o.answer_of == lk.answer_of
                  and lk.text in o.text and len(o.text) > len(lk.text)]
        if not longer:
            keep.append(lk)
    return keep


# --------------------------------------------------------------------------- answer types
@dataclass(frozen=True)
class TypeFailure:
    """A solution given in another number type that scores 0 (graded test) or ✗ (instant check)."""
    quiz: str
    qid: str
    kind: str
    form: str
    where: str
    error: str

    def __str__(self) -> str:
        return f"{self.quiz} {self.qid.upper()} ({self.kind}) as {self.form}: {self.where} fails: {self.error}"


def answer_types(records: Iterable[QuizRecord]) -> list[TypeFailure]:
    """Type failures found while :func:`load_items` executed the quizzes (``check_types=True``)."""
    return [f for rec in records for f in rec.type_failures]


# --------------------------------------------------------------------------- report
def audit_report(records: list[QuizRecord], types: bool = True) -> tuple[str, bool]:
    """(printable report, whether every check passed) for the quizzes in ``records``."""
    items = [it for rec in records for it in rec.items]
    lines, ok = [], True
    bal = option_balance(items)
    lines.append(f"Option balance ({bal.n} multiple-choice questions):")
    lines.append(f"  right option is the longest: {len(bal.longest_correct)}/{bal.n} = {bal.longest_share:.0%} "
                 f"(at most {MAX_LONGEST_SHARE:.0%})")
    lines.append("  right letters: " + ", ".join(f"({k}) {v}/{bal.n} = {v / bal.n:.0%}" for k, v in sorted(bal.letters.items()))
                 + f" (each {LETTER_SHARE[0]:.0%}-{LETTER_SHARE[1]:.0%})" if bal.n else "  none")
    lines += [f"  FAIL: {p}" for p in bal.problems]
    ok &= bal.ok
    rep = repeats(items)
    lines.append(f"Repeats across quizzes: {len(rep)}")
    lines += [f"  FAIL: {r}" for r in rep]
    ok &= not rep
    lk = leaks(records)
    lines.append(f"Leaks (visible cells showing another question's answer): {len(lk)}")
    lines += [f"  FAIL: {x}" for x in lk]
    ok &= not lk
    if types:
        tf = answer_types(records)
        lines.append(f"Answer types (Python, numpy, torch numbers accepted): {len(tf)} failures")
        lines += [f"  FAIL: {f}" for f in tf]
        ok &= not tf
    lines.append("all checks pass" if ok else "some checks fail")
    return "\n".join(lines), ok
