"""Item statistics of a quiz, as learning platforms report them, from autograded submissions.

For each question (item) ``j`` of a quiz taken by students ``s = 1..N`` with item scores
``x_sj`` (0 or 1) and totals ``T_s = sum_j x_sj``:

- **difficulty** ``p_j = mean_s x_sj``, the share correct (higher is easier);
- **discrimination** ``r_j``: the point-biserial correlation of ``x_j`` with the
  *rest-score* ``R_s = T_s - x_sj`` (the item itself left out, so it cannot correlate with
  itself): ``r_j = cov(x_j, R) / (sd(x_j) sd(R))`` with population moments; undefined (NaN)
  when every student scored the item alike or the rest-scores do not vary;
- for a multiple-choice item, how often each option was chosen (the wrong ones show which
  misconception a distractor catches; one nobody picks does no work);
- flags: ``too_easy`` (p > 0.9), ``too_hard`` (p < 0.2), ``negative_discrimination``
  (r < 0: the stronger students miss it more often, usually a flawed key or question).

:func:`item_statistics` computes them from plain mappings; :func:`quiz_item_stats`
reads a course root (the answers from ``autograded/<student>/<quiz>/<quiz>.ipynb``, the
scores passed in from the gradebook by :mod:`courseutils.grading.instructor`), and
:func:`write_item_stats` writes ``quizzes/item_stats.csv`` and a plot.
"""
from __future__ import annotations

import ast
import csv
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import CourseError
from ..core.io import atomic_path
from .quiz_keys import _read, _source_path, course_root, parse_quiz

__all__ = ["ItemStat", "item_statistics", "read_answer", "submitted_answers", "correct_letters",
           "quiz_item_stats", "write_item_stats", "CSV_COLUMNS", "TOO_EASY", "TOO_HARD"]

TOO_EASY = 0.9
TOO_HARD = 0.2
BLANK = "blank"        # an answer cell left as released, or one that does not parse
CSV_COLUMNS = ["quiz", "question", "kind", "n_students", "difficulty", "discrimination", "correct_option",
               "option_counts", "wrong_choices", "most_chosen_wrong", "blank", "too_easy", "too_hard",
               "negative_discrimination"]


@dataclass(frozen=True)
class ItemStat:
    """Statistics of one question over the students who submitted the quiz."""
    quiz: str
    qid: str
    kind: str
    n: int
    difficulty: float
    discrimination: float                    # NaN when undefined
    correct: str = ""                        # the right letter of a multiple-choice item
    choices: dict = field(default_factory=dict)   # letter -> how many chose it (every option), plus "blank"

    @property
    def too_easy(self) -> bool:
        return self.difficulty > TOO_EASY

    @property
    def too_hard(self) -> bool:
        return self.difficulty < TOO_HARD

    @property
    def negative_discrimination(self) -> bool:
        return math.isfinite(self.discrimination) and self.discrimination < 0

    @property
    def flags(self) -> list[str]:
        return [name for name in ("too_easy", "too_hard", "negative_discrimination") if getattr(self, name)]

    def wrong_choices(self) -> dict[str, int]:
        """Letter -> how many chose it, for the wrong options only."""
        return {k: v for k, v in self.choices.items() if k not in (self.correct, BLANK)}

    def row(self) -> dict[str, Any]:
        wrong = self.wrong_choices()
        top = max(wrong.items(), key=lambda kv: (kv[1], -ord(kv[0][0])), default=("", 0))
        return {
            "quiz": self.quiz, "question": self.qid, "kind": self.kind, "n_students": self.n,
            "difficulty": f"{self.difficulty:.4f}",
            "discrimination": "" if not math.isfinite(self.discrimination) else f"{self.discrimination:.4f}",
            "correct_option": self.correct,
            "option_counts": " ".join(f"{k}:{v}" for k, v in sorted(self.choices.items()) if k != BLANK),
            "wrong_choices": " ".join(f"{k}:{v}" for k, v in sorted(wrong.items())),
            "most_chosen_wrong": top[0] if top[1] > 0 else "",
            "blank": self.choices.get(BLANK, "") if self.kind == "choice" else "",
            "too_easy": int(self.too_easy), "too_hard": int(self.too_hard),
            "negative_discrimination": int(self.negative_discrimination),
        }


def _point_biserial(x: list[float], rest: list[float]) -> float:
    """Pearson correlation of item scores ``x`` with rest-scores ``rest`` (population moments)."""
    n = len(x)
    mx, mr = sum(x) / n, sum(rest) / n
    cov = sum((a - mx) * (b - mr) for a, b in zip(x, rest)) / n
    vx = sum((a - mx) ** 2 for a in x) / n
    vr = sum((b - mr) ** 2 for b in rest) / n
    if vx <= 1e-15 or vr <= 1e-15:
        return math.nan
    return cov / math.sqrt(vx * vr)


def item_statistics(quiz: str, scores: Mapping[str, Mapping[str, float]], kinds: Mapping[str, str],
                    answers: Mapping[str, Mapping[str, Any]] | None = None,
                    correct: Mapping[str, str] | None = None,
                    options: Mapping[str, str] | None = None) -> list[ItemStat]:
    """Statistics of every item of ``quiz``.

    Args:
        scores: ``{student: {qid: score}}``, each score 0..1 (a missing one counts 0).
        kinds: ``{qid: kind}`` in question order (choice, bool, number, function).
        answers: ``{student: {qid: answer}}`` as submitted (``None`` for a blank one); used
            to count the options chosen in multiple-choice items.
        correct: ``{qid: letter}`` of the multiple-choice items.
        options: ``{qid: "abcd"}`` of the multiple-choice items.
    """
    students = sorted(scores)
    if not students:
        raise CourseError(f"{quiz}: no scored submissions to compute item statistics from")
    qids = list(kinds)
    x = {q: [float(scores[s].get(q, 0.0)) for s in students] for q in qids}
    totals = [sum(x[q][i] for q in qids) for i in range(len(students))]
    answers, correct, options = answers or {}, correct or {}, options or {}
    out = []
    for q in qids:
        rest = [t - xi for t, xi in zip(totals, x[q])]
        choices: dict[str, int] = {}
        if kinds[q] == "choice":
            choices = {letter: 0 for letter in options.get(q, "")}
            choices[BLANK] = 0
            for s in students:
                given = answers.get(s, {}).get(q)
                key = given if isinstance(given, str) and given in choices and given != BLANK else BLANK
                choices[key] += 1
        out.append(ItemStat(quiz, q, kinds[q], len(students), sum(x[q]) / len(students),
                            _point_biserial(x[q], rest), correct.get(q, ""), choices))
    return out


# --------------------------------------------------------------------------- reading a course root
def read_answer(source: str, variable: str) -> Any:
    """The constant a student's answer cell assigns to ``variable`` (last assignment), else ``None``.

    Only literals are read (``answer_q03 = "c"``, ``answer_q07 = False``); the cell is
    parsed, never run. A cell left as released (``raise NotImplementedError()``), one that
    does not parse, or one that computes its answer gives ``None``.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    value = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
    return value


def submitted_answers(quiz: str, root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """``{student: {qid: answer}}`` of the choice and bool items, read from the autograded notebooks."""
    root = course_root(root)
    questions = parse_quiz(_read(_source_path(quiz, root)), quiz)
    wanted = {f"{q.qid}_answer": q for q in questions if q.kind in ("choice", "bool")}
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "autograded").glob(f"*/{quiz}/{quiz}.ipynb")):
        nb = _read(path)
        got: dict[str, Any] = {}
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
            if gid in wanted:
                q = wanted[gid]
                got[q.qid] = read_answer(cell.source, q.variable)
        out[path.parent.parent.name] = got
    return out


def correct_letters(quiz: str, root: str | os.PathLike | None = None) -> dict[str, str]:
    """``{qid: letter}`` of the multiple-choice items, read from the hidden tests (``answer_qNN == "c"``)."""
    root = course_root(root)
    out = {}
    for q in parse_quiz(_read(_source_path(quiz, root)), quiz):
        if q.kind == "choice":
            m = re.search(rf"\b{q.variable}\s*==\s*['\"]([a-z])['\"]", q.hidden_test)
            if m:
                out[q.qid] = m.group(1)
    return out


def quiz_item_stats(quiz: str, scores: Mapping[str, Mapping[str, float]],
                    root: str | os.PathLike | None = None) -> list[ItemStat]:
    """Item statistics of ``quiz`` from gradebook ``scores`` (``{student: {"qNN_test": score}}``,
    as :func:`courseutils.grading.instructor.question_scores` gives them) and the answers in
    ``autograded/``."""
    root = course_root(root)
    questions = parse_quiz(_read(_source_path(quiz, root)), quiz)
    per_item = {s: {g.removesuffix("_test"): v for g, v in per.items()} for s, per in scores.items()}
    return item_statistics(quiz, per_item, {q.qid: q.kind for q in questions}, submitted_answers(quiz, root),
                           correct_letters(quiz, root),
                           {q.qid: q.meta["options"] for q in questions if q.kind == "choice"})


def write_item_stats(stats: list[ItemStat], csv_path: str | os.PathLike,
                     png_path: str | os.PathLike | None = None) -> list[Path]:
    """Write ``stats`` as CSV (one row per item, :data:`CSV_COLUMNS`) and, if asked, the plot as PNG."""
    from ..viz.plot_items import item_map

    if not stats:
        raise CourseError("no item statistics to write (nothing autograded yet?)")
    written = []
    with atomic_path(Path(csv_path), "csv_path") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for st in stats:
                writer.writerow(st.row())
    written.append(Path(csv_path))
    if png_path is not None:
        labels = [f"{st.quiz[:2]} {st.qid.upper()}" for st in stats]
        fig = item_map(labels, [st.difficulty for st in stats], [st.discrimination for st in stats],
                       easy=TOO_EASY, hard=TOO_HARD,
                       title=f"item statistics ({', '.join(sorted({st.quiz for st in stats}))})")
        with atomic_path(Path(png_path), "png_path") as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        written.append(Path(png_path))
    return written
