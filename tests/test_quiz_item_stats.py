"""Item statistics (courseutils.grading.item_stats) on synthetic submissions with known answer patterns.

The numbers are checked against a hand computation (below) and, on random data, against
numpy's correlation coefficient. Reading answers from autograded notebooks is checked on
notebooks built from a real quiz's release; the whole chain through nbgrader's gradebook
runs in test_quiz_pipeline.py (test_item_stats).
"""
from __future__ import annotations

import copy
import csv
import math
import shutil

import nbformat
import numpy as np
import pytest

from courseutils.grading import instructor as grading, item_stats, quiz
from courseutils.core.errors import CourseError

ROOT = grading.course_root()

# Four students, six items. Item scores x (1 = right), totals T = 4, 2, 3, 2:
#            s1 s2 s3 s4
#   q01 (b)   b  b  a  c   -> x = 1 1 0 0   p = 0.5
#   q02 num                   x = 1 0 1 0   p = 0.5
#   q03 (a)   a  d  d  -   -> x = 1 0 0 0   p = 0.25   (s4 left it blank)
#   q04 bool                  x = 0 0 1 1   p = 0.5
#   q05 num                   x = 1 1 1 1   p = 1      too easy, r undefined
#   q06 (c)   a  a  b  d   -> x = 0 0 0 0   p = 0      too hard, r undefined
# Point-biserial r = cov(x, R) / (sd x sd R), R = T - x, population moments:
#   q01: R = 3 1 3 2, mean 2.25, var 0.6875, cov -0.125  -> r = -0.125 / (0.5 sqrt(0.6875)) = -1/sqrt(11)
#   q02: R = 3 2 2 2, mean 2.25, var 0.1875, cov  0.125  -> r =  0.125 / (0.5 sqrt(0.1875)) =  1/sqrt(3)
#   q03: R = 3 2 3 2, mean 2.5,  var 0.25, var x 0.1875, cov 0.125 -> r = 0.125 / sqrt(0.046875) = 1/sqrt(3)
#   q04: R = 4 2 2 1, mean 2.25, var 1.1875, cov -0.375  -> r = -0.375 / (0.5 sqrt(1.1875)) = -3/sqrt(19)
X = {"q01": [1, 1, 0, 0], "q02": [1, 0, 1, 0], "q03": [1, 0, 0, 0], "q04": [0, 0, 1, 1], "q05": [1, 1, 1, 1],
     "q06": [0, 0, 0, 0]}
CHOSEN = {"q01": ["b", "b", "a", "c"], "q03": ["a", "d", "d", None], "q06": ["a", "a", "b", "d"]}
KINDS = {"q01": "choice", "q02": "number", "q03": "choice", "q04": "bool", "q05": "number", "q06": "choice"}
CORRECT = {"q01": "b", "q03": "a", "q06": "c"}
STUDENTS = ["s1", "s2", "s3", "s4"]


def _synthetic():
    scores = {s: {q: X[q][i] for q in X} for i, s in enumerate(STUDENTS)}
    answers = {s: {q: CHOSEN[q][i] for q in CHOSEN} for i, s in enumerate(STUDENTS)}
    return item_stats.item_statistics("99_demo", scores, KINDS, answers, CORRECT, {q: "abcd" for q in CHOSEN})


def test_statistics_match_the_hand_computation():
    stats = {st.qid: st for st in _synthetic()}
    assert [stats[q].difficulty for q in X] == [0.5, 0.5, 0.25, 0.5, 1.0, 0.0]
    assert math.isclose(stats["q01"].discrimination, -1 / math.sqrt(11))
    assert math.isclose(stats["q02"].discrimination, 1 / math.sqrt(3))
    assert math.isclose(stats["q03"].discrimination, 1 / math.sqrt(3))
    assert math.isclose(stats["q04"].discrimination, -3 / math.sqrt(19))
    assert math.isnan(stats["q05"].discrimination) and math.isnan(stats["q06"].discrimination)
    assert {q: st.flags for q, st in stats.items() if st.flags} == {
        "q01": ["negative_discrimination"], "q04": ["negative_discrimination"], "q05": ["too_easy"], "q06": ["too_hard"]}
    assert stats["q01"].wrong_choices() == {"a": 1, "c": 1, "d": 0}
    assert stats["q03"].wrong_choices() == {"b": 0, "c": 0, "d": 2} and stats["q03"].choices["blank"] == 1
    assert stats["q06"].wrong_choices() == {"a": 2, "b": 1, "d": 1} and stats["q06"].row()["most_chosen_wrong"] == "a"
    assert stats["q02"].choices == {} and all(st.n == 4 for st in stats.values())


def test_discrimination_equals_numpy_correlation_with_the_rest_score():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 15)) < rng.uniform(0.2, 0.9, 15)).astype(float)     # (students, items)
    scores = {f"s{i}": {f"q{j + 1:02d}": x[i, j] for j in range(15)} for i in range(40)}
    stats = item_stats.item_statistics("99_demo", scores, {f"q{j + 1:02d}": "number" for j in range(15)})
    for j, st in enumerate(stats):
        rest = x.sum(axis=1) - x[:, j]
        assert math.isclose(st.discrimination, np.corrcoef(x[:, j], rest)[0, 1], abs_tol=1e-12)
        assert math.isclose(st.difficulty, x[:, j].mean())


def test_csv_and_plot(tmp_path):
    written = item_stats.write_item_stats(_synthetic(), tmp_path / "item_stats.csv", tmp_path / "item_stats.png")
    assert written == [tmp_path / "item_stats.csv", tmp_path / "item_stats.png"]
    rows = list(csv.DictReader((tmp_path / "item_stats.csv").open()))
    assert list(rows[0]) == item_stats.CSV_COLUMNS and [r["question"] for r in rows] == list(X)
    q01 = rows[0]
    assert (q01["difficulty"], q01["correct_option"], q01["option_counts"], q01["wrong_choices"]) == (
        "0.5000", "b", "a:1 b:2 c:1 d:0", "a:1 c:1 d:0")
    assert float(q01["discrimination"]) == pytest.approx(-1 / math.sqrt(11), abs=1e-4)
    assert q01["negative_discrimination"] == "1" and rows[4]["too_easy"] == "1" and rows[5]["too_hard"] == "1"
    assert rows[4]["discrimination"] == ""
    assert (tmp_path / "item_stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CourseError, match="no item statistics"):
        item_stats.write_item_stats([], tmp_path / "x.csv")
    with pytest.raises(CourseError, match="no scored submissions"):
        item_stats.item_statistics("99_demo", {}, KINDS)


def test_read_answer_reads_literals_only():
    assert item_stats.read_answer('# answer_q03: one of a-d\nanswer_q03 = "c"\n', "answer_q03") == "c"
    assert item_stats.read_answer("answer_q07 = False", "answer_q07") is False
    assert item_stats.read_answer('answer_q03 = "a"\nanswer_q03 = "d"', "answer_q03") == "d"
    assert item_stats.read_answer("raise NotImplementedError()", "answer_q03") is None
    assert item_stats.read_answer("answer_q03 = (", "answer_q03") is None
    assert item_stats.read_answer("answer_q03 = pick()", "answer_q03") is None


def test_quiz_item_stats_reads_autograded_notebooks(tmp_path):
    """Answers come from autograded/<student>/<quiz>/<quiz>.ipynb, scores from the gradebook's per-cell grades."""
    quiz_id = "00_setup_and_tour"
    root = tmp_path / "quizzes"
    shutil.copytree(ROOT / "source" / quiz_id, root / "source" / quiz_id)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    source = nbformat.read(str(root / "source" / quiz_id / f"{quiz_id}.ipynb"), as_version=4)
    questions = grading.parse_quiz(source, quiz_id)
    choice = [q for q in questions if q.kind == "choice"]
    correct = item_stats.correct_letters(quiz_id, root)
    assert set(correct) == {q.qid for q in choice}
    # the instant-feedback keys (built from the solutions, not the hidden tests) agree on every letter
    assert all(quiz.is_correct(quiz_id, qid, letter) for qid, letter in correct.items())
    picks = {"ada": {q.qid: correct[q.qid] for q in choice}, "bob": {q.qid: "a" for q in choice}, "eve": {}}
    scores = {}
    for student, chosen in picks.items():
        nb = copy.deepcopy(source)
        for q in questions:
            if q.qid in chosen:
                nb.cells[q.answer_cell].source = f'# answer\n{q.variable} = "{chosen[q.qid]}"\n'
            elif q.kind != "function":
                nb.cells[q.answer_cell].source = "raise NotImplementedError()"
        folder = root / "autograded" / student / quiz_id
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{quiz_id}.ipynb"))
        scores[student] = {f"{q.qid}_test": float(chosen.get(q.qid) == correct.get(q.qid, "?")) for q in questions}
    stats = {st.qid: st for st in item_stats.quiz_item_stats(quiz_id, scores, root)}
    assert list(stats) == [q.qid for q in questions]
    for q in choice:
        st = stats[q.qid]
        expected = {letter: 0 for letter in "abcd"}
        expected[correct[q.qid]] += 1
        expected["a"] += 1
        expected["blank"] = 1
        assert st.choices == expected and st.correct == correct[q.qid]
        assert st.difficulty == pytest.approx(1 / 3 if correct[q.qid] != "a" else 2 / 3)
