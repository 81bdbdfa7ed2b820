"""Exam variants of a quiz (issue 17): new givens, shuffled options, no check cells, no keys.

The self-study quizzes ship their instant-feedback keys in the package, so a student can
try every letter against them. An exam variant gives those keys no use:

1. its givens are drawn anew from a secret (:func:`courseutils.grading.givens.draw_givens`),
   and every hidden test that depends on them recomputes its expected answer from its own
   copy (``# @givens``), so the self-study numbers are wrong in the exam;
2. the options of every multiple-choice question are put in a new order drawn from the
   secret: the prompt's option list is reordered and relabelled (a, b, c, ...), and the
   solution and the hidden test (``answer_qNN == "c"``) follow the right option. A
   self-study answer copied into the exam is right with chance 1 / (number of options);
   true/false questions stay as they are;
3. the check cells are removed, and no key is written for the variant (``check()`` for a
   quiz without a key says there is no feedback).

One secret gives one variant, :func:`build_variant` (a pure function of the instructor
notebook and the secret: the same secret always gives the same variant). The variant
``k`` of quiz ``NN_slug`` is released as its own nbgrader assignment ``NN_slug_exam_k``
(:func:`variant_id`; the name says nothing about the secret), because nbgrader keeps one
version per assignment and restores locked cells from it.
:func:`courseutils.grading.instructor.release_exam` writes and releases the variants.

The option order: option ``L`` of question ``qid`` gets the sort key
``u(secret, quiz, qid, "options", L)`` (a SHA-256 number in [0, 1), see
:func:`courseutils.grading.givens._uniform`), and the options are listed by increasing
key, i.e. a uniformly random permutation for each question.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import CourseError
from .givens import _uniform, draw_givens, givens_cell, parse_givens, rewrite_givens
from .quiz_keys import HIDDEN_BEGIN, HIDDEN_END, parse_quiz

__all__ = ["Variant", "variant_id", "option_order", "shuffle_prompt", "build_variant", "EXAM_NOTE"]

_OPTION = re.compile(r"^(\s*-\s*\*\*\()([a-z])(\)\*\*\s*)(.*\S)\s*$")

EXAM_NOTE = ("**Exam version.** This notebook has no check cells and no instant feedback: each question has "
             "a prompt, an answer cell and a locked test cell. Your grade is what nbgrader's hidden tests say. "
             "The givens and the order of the options differ from the self-study quiz.")


# The "Open in Colab" badge (tools/colab_cells.py) on its own line, with the blank line before it.
_COLAB_BADGE = re.compile(r"\n*\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")

_INTRO_EDITS = [
    ("Each question has four cells: the question, an answer cell (replace `raise NotImplementedError()` with your "
     "answer), a check cell that says at once whether the answer is right (✓/✗), and a locked test cell",
     "Each question has three cells: the question, an answer cell (replace `raise NotImplementedError()` with your "
     "answer) and a locked test cell"),
    ("Instant feedback can be switched off for exams (`COURSE_QUIZ_FEEDBACK=off`); the grade always comes from the "
     "hidden tests.", "The grade comes from the hidden tests."),
    ("use the names in your answers, because an exam gives other numbers.", "use the names in your answers."),
]


@dataclass
class Variant:
    """One exam variant of a quiz: the instructor notebook and what changed."""
    quiz: str                       # the self-study quiz it comes from, e.g. "01_number_formats"
    assignment: str                 # its nbgrader assignment, e.g. "01_number_formats_exam_2"
    notebook: Any = field(repr=False)
    givens: dict = field(default_factory=dict)          # the drawn givens
    orders: dict = field(default_factory=dict)          # qid -> letters in their new order, e.g. "cadb"
    answers: dict = field(default_factory=dict)         # qid -> (self-study letter, exam letter)


def variant_id(quiz: str, k: int) -> str:
    """The assignment name of variant ``k`` (1, 2, ...) of ``quiz``: ``NN_slug_exam_k``."""
    if not (isinstance(k, int) and k >= 1):
        raise CourseError(f"k={k!r}: variants are numbered 1, 2, ...")
    return f"{quiz}_exam_{k}"


def option_order(options: str, secret: str, quiz: str, qid: str) -> str:
    """The letters of ``options`` in the variant's order: position ``i`` shows old option ``order[i]``."""
    return "".join(sorted(options, key=lambda letter: _uniform(secret, quiz, qid, "options", letter)))


def shuffle_prompt(markdown: str, order: str, where: str = "prompt") -> str:
    """The prompt with its option lines ``- **(x)** text`` reordered by ``order`` and relabelled a, b, c, ..."""
    lines = markdown.split("\n")
    rows = [i for i, line in enumerate(lines) if _OPTION.match(line)]
    found = {_OPTION.match(lines[i]).group(2): _OPTION.match(lines[i]) for i in rows}
    if sorted(found) != sorted(order) or len(rows) != len(order):
        raise CourseError(f"{where}: lists options {[_OPTION.match(lines[i]).group(2) for i in rows]}, "
                          f"expected one line for each of {sorted(order)}")
    letters = "".join(sorted(order))
    for position, row in enumerate(rows):
        m = found[order[position]]
        lines[row] = f"{m.group(1)}{letters[position]}{m.group(3)}{m.group(4)}"
    return "\n".join(lines)


def _relabel(source: str, pattern: str, new_letter: str, where: str) -> str:
    """Replace the one letter that ``pattern`` (with a group for the letter) finds in ``source``."""
    matches = list(re.finditer(pattern, source, re.M))
    if len(matches) != 1:
        raise CourseError(f"{where}: expected one match of {pattern!r}, found {len(matches)}")
    m = matches[0]
    return source[:m.start(1)] + new_letter + source[m.end(1):]


def _hidden_region(source: str) -> tuple[int, int]:
    start = source.index(HIDDEN_BEGIN)
    return start, source.index(HIDDEN_END, start)


def build_variant(nb, quiz: str, secret: str, k: int) -> Variant:
    """Variant ``k`` of the instructor notebook ``nb`` of ``quiz``, drawn from ``secret``.

    Returns a new notebook (``nb`` is unchanged): givens drawn (the givens cell rewritten,
    its comments kept), multiple-choice options shuffled in the prompt, the solution and
    the hidden test, check cells removed, the ``wrong`` letters remapped, and a note on
    top saying it is an exam. Raises :class:`CourseError` when the quiz breaks a convention
    the rewrite relies on.
    """
    out = copy.deepcopy(nb)
    questions = parse_quiz(out, quiz)
    variant = Variant(quiz, variant_id(quiz, k), out)

    cell = givens_cell(out)
    if cell is not None:
        values = parse_givens(cell.source, f"{quiz} givens cell")
        variant.givens = draw_givens(values, cell.metadata.get("quiz", {}).get("draw", {}), secret, quiz)
        cell.source = rewrite_givens(cell.source, variant.givens)

    for q in questions:
        if q.kind != "choice":
            continue
        options = q.meta["options"]
        order = option_order(options, secret, quiz, q.qid)
        letters = "".join(sorted(options))
        new_letter = {old: letters[order.index(old)] for old in options}    # old letter -> its new label
        where = f"{quiz} {q.qid}"
        prompt = out.cells[q.answer_cell - 1]
        prompt.source = shuffle_prompt(prompt.source, order, f"{where} prompt")
        answer = out.cells[q.answer_cell]
        old = re.search(rf"^\s*{q.variable}\s*=\s*['\"]([a-z])['\"]", answer.source, re.M)
        if old is None:
            raise CourseError(f"{where}: the solution must assign {q.variable} = \"<letter>\"")
        answer.source = _relabel(answer.source, rf"^\s*{q.variable}\s*=\s*['\"]([a-z])['\"]",
                                 new_letter[old.group(1)], f"{where} solution")
        test = out.cells[q.test_cell]
        start, end = _hidden_region(test.source)
        hidden = _relabel(test.source[start:end], rf"\b{q.variable}\s*==\s*['\"]([a-z])['\"]",
                          new_letter[old.group(1)], f"{where} hidden test")
        test.source = test.source[:start] + hidden + test.source[end:]
        meta = answer.metadata.get("quiz", {})
        if meta.get("wrong") in new_letter:
            meta["wrong"] = new_letter[meta["wrong"]]
        variant.orders[q.qid] = order
        variant.answers[q.qid] = (old.group(1), new_letter[old.group(1)])

    checks = {q.check_cell for q in questions}
    out.cells = [c for i, c in enumerate(out.cells) if i not in checks]
    title = out.cells[0]
    for old_text, new_text in _INTRO_EDITS:        # the self-study instructions mention the check cells
        title.source = title.source.replace(old_text, new_text)
    title.source = _COLAB_BADGE.sub("", title.source)  # it opens the self-study quiz, not this variant
    lines = title.source.split("\n")
    lines[0] = f"{lines[0]} · exam variant {k}" if lines[0].startswith("#") else lines[0]
    title.source = "\n".join(lines[:1] + ["", EXAM_NOTE] + lines[1:])
    return variant
