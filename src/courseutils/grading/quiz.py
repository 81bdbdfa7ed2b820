"""Instant quiz feedback: one line of ✓/✗ per answer, from salted hashes.

A quiz notebook calls, right after each answer cell::

    check("01_number_formats", "q03", answer_q03)

and sees at once whether the answer is right. The key file
``courseutils/data/quiz_keys/<quiz>.json`` never holds a plain answer: ``make quiz-keys``
(:mod:`courseutils.grading`) executes the instructor notebook, reads each answer and
stores salted SHA-256 hashes of it. Formal grades come from nbgrader's hidden tests; this
module only helps self-study, so it stays light: no torch, no nbgrader, standard library
plus numpy (imported only to run the visible example of a function question).

Acceptance rules (the same ones :mod:`courseutils.grading` uses to write the keys):

- ``choice``: one lowercase letter among the question's options, compared exactly.
- ``bool``: ``True`` or ``False`` (a Python or numpy bool).
- ``number`` with tolerance ``tol``: any one real number, whatever library made it: a
  ``numbers.Real`` (int, float, numpy scalar; not a bool), a 0-d numpy array or a 0-d
  torch tensor (recognised by ``.ndim == 0`` and ``.item()``, so torch is never imported).
  :func:`as_real` is that rule; :func:`expect_number` (the visible part of a graded test)
  and the instant check both use it, so neither accepts what the other rejects. Then the
  grid step is ``g = tol / 10`` and the grid index of a value ``x`` is
  ``n(x) = floor(x / g + 1/2)``. The key stores the hashes of ``n(a) - 10 ... n(a) + 10``
  for the key answer ``a``; ``x`` is accepted when the hash of ``n(x)`` is among them, i.e.
  when ``|n(x) - n(a)| <= 10``. Hence every ``x`` with ``|x - a| <= tol`` is accepted (the
  grader's hidden test uses exactly that rule), every ``x`` with ``|x - a| >= 1.1 tol`` is
  rejected, and between the two the grid decides.
- ``function``: the question's visible example test (not secret, shipped in the key) runs
  against the student's function. Passing it does not promise the hidden tests pass.

Hashes keep answers out of plain sight; they do not stop a student who brute-forces
``check`` over the few options of a multiple-choice question. For exams, turn the
feedback off (``COURSE_QUIZ_FEEDBACK=off`` or :func:`set_feedback`) and grade with nbgrader.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import traceback
from pathlib import Path
from typing import Any, Callable

from ..core.errors import CourseError

__all__ = [
    "check", "is_correct", "judge", "feedback_enabled", "set_feedback", "load_key", "keys_dir",
    "available_quizzes", "expect_choice", "expect_bool", "expect_number", "as_real",
    "GRID_STEPS", "KINDS", "canonical", "grid_index", "answer_hashes", "salted_hash",
]

FEEDBACK_ENV = "COURSE_QUIZ_FEEDBACK"
KINDS = ("choice", "bool", "number", "function")
GRID_STEPS = 10          # grid step g = tol / GRID_STEPS; neighbours accepted: +-GRID_STEPS
HASH_CHARS = 24          # hex characters kept from each SHA-256 digest


# --------------------------------------------------------------------------- switches
def feedback_enabled() -> bool:
    """Whether :func:`check` shows feedback: ``COURSE_QUIZ_FEEDBACK`` is not off/0/false/no."""
    value = os.environ.get(FEEDBACK_ENV, "on").strip().lower()
    return value not in ("off", "0", "false", "no")


def set_feedback(enabled: bool) -> None:
    """Turn instant feedback on or off for this process (sets ``COURSE_QUIZ_FEEDBACK``)."""
    if not isinstance(enabled, bool):
        raise CourseError(f"enabled={enabled!r} must be True or False")
    os.environ[FEEDBACK_ENV] = "on" if enabled else "off"


# --------------------------------------------------------------------------- keys
def keys_dir() -> Path:
    """The directory of the key files shipped with the package."""
    return Path(__file__).parents[1] / "data" / "quiz_keys"


def available_quizzes() -> list[str]:
    """Quiz ids that have a key file, e.g. ``["00_setup_and_tour", ...]``."""
    return sorted(p.stem for p in keys_dir().glob("*.json"))


def load_key(quiz: str) -> dict:
    """Read the key of ``quiz`` (a dict with ``quiz``, ``source_digest``, ``questions``)."""
    path = keys_dir() / f"{quiz}.json"
    if not isinstance(quiz, str) or "/" in quiz or not path.is_file():
        raise CourseError(f"quiz={quiz!r} has no key file in {keys_dir()}; "
                          f"available: {available_quizzes()} (regenerate with `make quiz-keys`)")
    return json.loads(path.read_text(encoding="utf-8"))


def salted_hash(salt: str, text: str) -> str:
    """``sha256(salt + ":" + text)`` as hex, shortened to ``HASH_CHARS`` characters."""
    return hashlib.sha256(f"{salt}:{text}".encode("utf-8")).hexdigest()[:HASH_CHARS]


def grid_index(x: float, tol: float) -> int:
    """``n(x) = floor(x / g + 1/2)`` with grid step ``g = tol / GRID_STEPS``."""
    return math.floor(x / (tol / GRID_STEPS) + 0.5)


def canonical(kind: str, value: Any) -> str:
    """The text that is hashed for a choice or bool answer."""
    if kind == "choice":
        return str(value)
    if kind == "bool":
        return "True" if bool(value) else "False"
    raise CourseError(f"kind={kind!r}: canonical() serves 'choice' and 'bool' only")


def answer_hashes(kind: str, value: Any, salt: str, tol: float | None = None) -> list[str]:
    """Sorted salted hashes that accept ``value`` (and, for numbers, its tolerance band)."""
    if kind == "number":
        if tol is None or not tol > 0:
            raise CourseError(f"tol={tol!r}: a number question needs a tolerance > 0")
        n = grid_index(float(value), tol)
        return sorted(salted_hash(salt, str(k)) for k in range(n - GRID_STEPS, n + GRID_STEPS + 1))
    return [salted_hash(salt, canonical(kind, value))]


# --------------------------------------------------------------------------- form checks
def _is_bool(value: Any) -> bool:
    """A Python bool or a numpy bool scalar (``np.bool_``; named ``np.bool`` in numpy 2)."""
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def expect_choice(value: Any, options: str, name: str = "answer") -> None:
    """Assert that ``value`` is one lowercase letter among ``options`` (e.g. ``"abcd"``)."""
    assert isinstance(value, str) and len(value) == 1 and value in options, (
        f"{name} should be one lowercase letter among {', '.join(repr(o) for o in options)}; got {value!r}")


def expect_bool(value: Any, name: str = "answer") -> None:
    """Assert that ``value`` is ``True`` or ``False``."""
    assert _is_bool(value), f"{name} should be True or False; got {value!r}"


def as_real(value: Any) -> float | None:
    """``float(value)`` when ``value`` is one real number, else ``None``.

    Accepted: a ``numbers.Real`` that is not a bool (Python int and float, numpy scalars
    such as ``np.float64`` or ``np.int64``), and any 0-d array-like whose ``.item()`` is
    such a number: a 0-d numpy array (``np.array(2.0)``) or a 0-d torch tensor
    (``torch.tensor(2.0)``), recognised by ``.ndim == 0`` without importing torch.
    Rejected: bools, strings, complex numbers, arrays with a dimension (even of size 1).
    """
    if isinstance(value, numbers.Real):
        return None if _is_bool(value) else float(value)
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            item = value.item()
        except Exception:  # an object that only looks like an array
            return None
        if isinstance(item, numbers.Real) and not _is_bool(item):
            return float(item)
    return None


def expect_number(value: Any, name: str = "answer") -> None:
    """Assert that ``value`` is one finite real number (see :func:`as_real`: Python, numpy or torch)."""
    x = as_real(value)
    assert x is not None, f"{name} should be a number; got {type(value).__name__} {value!r}"
    assert math.isfinite(x), f"{name} should be a finite number; got {value!r}"


# --------------------------------------------------------------------------- checking
def _run_visible_test(question: dict, func: Any) -> tuple[bool, str]:
    """Run a function question's visible example against ``func``: (passed, message)."""
    name = question["name"]
    if not callable(func):
        return False, f"{name} should be a function; got {type(func).__name__}"
    import numpy as np

    namespace: dict[str, Any] = {"np": np, "math": math, name: func,
                                 "expect_number": expect_number, "expect_bool": expect_bool,
                                 "expect_choice": expect_choice}
    filename = f"<visible test of {name}>"
    try:
        exec(compile(question["visible_test"], filename, "exec"), namespace)
    except NotImplementedError:
        return False, f"{name} is not written yet (it raises NotImplementedError)"
    except Exception as exc:  # the student's code may raise anything
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        lines = question["visible_test"].splitlines()
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        if frames and 0 < (frames[-1].lineno or 0) <= len(lines):
            detail += f" at `{lines[frames[-1].lineno - 1].strip()}`"
        return False, f"{name} fails the visible example ({detail})"
    return True, f"{name} passes the visible example; the hidden tests decide the grade"


def judge(question: dict, answer: Any) -> tuple[bool, str]:
    """(correct, message) for one answer against one question's key entry (a dict)."""
    kind = question["kind"]
    if kind == "function":
        return _run_visible_test(question, answer)
    salt = question["salt"]
    if kind == "choice":
        options = question["options"]
        if not (isinstance(answer, str) and len(answer) == 1 and answer in options):
            return False, f"give one lowercase letter among {', '.join(options)} (got {answer!r})"
        ok = salted_hash(salt, canonical(kind, answer)) in question["hashes"]
        return ok, "correct" if ok else "not this one"
    if kind == "bool":
        if not _is_bool(answer):
            return False, f"give True or False (got {answer!r})"
        ok = salted_hash(salt, canonical(kind, answer)) in question["hashes"]
        return ok, "correct" if ok else "not this one"
    if kind == "number":
        x = as_real(answer)
        if x is None or not math.isfinite(x):
            return False, f"give a finite number (got {answer!r})"
        tol = question["tol"]
        ok = salted_hash(salt, str(grid_index(x, tol))) in question["hashes"]
        return ok, f"correct (within ±{tol:g})" if ok else f"not within ±{tol:g} of the expected value"
    raise CourseError(f"key entry has kind={kind!r}; allowed: {KINDS}")


def _question(quiz: str, qid: str) -> dict:
    key = load_key(quiz)
    questions = key["questions"]
    if qid not in questions:
        raise CourseError(f"qid={qid!r} is not a question of quiz {quiz!r}; allowed: {sorted(questions)}")
    return questions[qid]


def is_correct(quiz: str, qid: str, answer: Any) -> bool:
    """Whether ``answer`` is right for question ``qid`` of ``quiz`` (no printing).

    Works whatever the feedback switch says; :func:`check` is the function notebooks call.
    """
    return judge(_question(quiz, qid), answer)[0]


def check(quiz: str, qid: str, answer: Any, *, echo: Callable[[str], Any] = print) -> None:
    """Print one line: ``✓ q03: correct`` or ``✗ q03: ... hint: ...``.

    Returns nothing, so the notebook shows only the line. Prints nothing at all while
    nbgrader grades the notebook (``NBGRADER_EXECUTION`` set), so the grader neither runs
    student functions twice nor depends on the keys, and the graded notebook and its
    feedback carry no line about it. One line saying so when feedback is off, and for a
    quiz without a key file (an exam variant ships none).
    """
    if os.environ.get("NBGRADER_EXECUTION"):
        return
    if not feedback_enabled():
        echo(f"{qid}: instant feedback is disabled ({FEEDBACK_ENV}=off)")
        return
    if not isinstance(quiz, str) or "/" in quiz or not (keys_dir() / f"{quiz}.json").is_file():
        echo(f"{qid}: no instant feedback for quiz {quiz!r} (an exam variant ships no key)")
        return
    question = _question(quiz, qid)
    ok, message = judge(question, answer)
    line = f"{'✓' if ok else '✗'} {qid}: {message}"
    if not ok and question.get("hint"):
        line += f" — hint: {question['hint']}"
    echo(line)
