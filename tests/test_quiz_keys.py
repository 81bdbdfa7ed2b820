"""Instant feedback (courseutils.grading.quiz, alias courseutils.quiz) and its key files. Fast: no kernel is started.

The exact comparison of every key with one regenerated from the executed instructor
notebook, and the check of each key against the plain answers, are in
test_quiz_pipeline.py (they need the notebook executed).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from courseutils.grading import instructor as grading, quiz
from courseutils.core.errors import CourseError

ROOT = grading.course_root()
QUIZZES = grading.quiz_ids(ROOT)
HEX = re.compile(r"^[0-9a-f]+$")


def _solution_lines(source):
    """Distinctive lines (12+ characters) of the solution region of an answer cell."""
    lines = source.split("\n")
    begin = next(i for i, line in enumerate(lines) if line.strip() == "### BEGIN SOLUTION")
    end = next(i for i, line in enumerate(lines) if line.strip() == "### END SOLUTION")
    return [line.strip() for line in lines[begin + 1:end] if len(line.strip()) >= 12]


def _key(q):
    return json.loads((quiz.keys_dir() / f"{q}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("q", QUIZZES)
def test_key_in_sync_with_source(q):
    assert (quiz.keys_dir() / f"{q}.json").is_file(), f"no key for {q}: run `make quiz-keys`"
    assert grading.key_in_sync(q, ROOT), f"key of {q} is out of date with its source notebook: run `make quiz-keys`"


def test_stale_key_is_detected(tmp_path):
    q = QUIZZES[0]
    work = tmp_path / "quizzes"
    (work / "source" / q).mkdir(parents=True)
    (work / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text())
    nb = nbformat.read(str(ROOT / "source" / q / f"{q}.ipynb"), as_version=4)
    question = grading.parse_quiz(nb, q)[0]
    nb.cells[question.test_cell].source += "\nassert True"
    nbformat.write(nb, str(work / "source" / q / f"{q}.ipynb"))
    assert not grading.key_in_sync(q, work)


@pytest.mark.parametrize("q", QUIZZES)
def test_key_holds_hashes_and_visible_tests_only(q):
    key = _key(q)
    nb = nbformat.read(str(ROOT / "source" / q / f"{q}.ipynb"), as_version=4)
    questions = {x.qid: x for x in grading.parse_quiz(nb, q)}
    assert key["quiz"] == q and set(key["questions"]) == set(questions)
    allowed = {"choice": {"kind", "hint", "salt", "hashes", "options"},
               "bool": {"kind", "hint", "salt", "hashes"},
               "number": {"kind", "hint", "salt", "hashes", "tol"},
               "function": {"kind", "hint", "name", "visible_test"}}
    for qid, entry in key["questions"].items():
        src = questions[qid]
        assert entry["kind"] == src.kind
        assert set(entry) <= allowed[src.kind], f"{qid}: unexpected fields {set(entry) - allowed[src.kind]}"
        text = json.dumps(entry, ensure_ascii=False)
        if src.kind == "function":
            assert entry["visible_test"].strip() == src.visible_test.strip()
            secret = _solution_lines(nb.cells[src.answer_cell].source) + [src.meta["wrong"].strip()]
            secret += [line.strip() for line in src.hidden_test.splitlines() if len(line.strip()) >= 12]
            leaked = [line for line in secret if line in text]
            assert not leaked, f"{qid}: key contains solution, hidden-test or wrong-answer code {leaked}"
        else:
            assert HEX.match(entry["salt"]) and all(HEX.match(h) and len(h) == quiz.HASH_CHARS for h in entry["hashes"])
            expected = 2 * quiz.GRID_STEPS + 1 if src.kind == "number" else 1
            assert len(entry["hashes"]) == expected == len(set(entry["hashes"]))
            assert entry["hashes"] == sorted(entry["hashes"])
        if src.kind == "number":
            assert entry["tol"] == src.meta["tol"]


def test_numeric_acceptance_rule_brute_force():
    """Accept every x with |x - a| <= tol, reject every x with |x - a| >= 1.1 tol (documented rule)."""
    rng = np.random.default_rng(0)
    for a, tol in [(140.0, 1.0), (0.0078125, 1e-5), (6.020599913279624, 0.02), (-3.7, 0.05), (0.0, 0.5)]:
        entry = {"kind": "number", "tol": tol, "salt": "s", "hashes": quiz.answer_hashes("number", a, "s", tol)}
        inside = a + tol * np.concatenate([rng.uniform(-1, 1, 400), [-1.0, 1.0, 0.0, 0.999999]])
        outside = a + tol * np.concatenate([rng.uniform(1.1, 50, 200), -rng.uniform(1.1, 50, 200), [1.1, -1.1]])
        assert all(quiz.judge(entry, float(x))[0] for x in inside)
        assert not any(quiz.judge(entry, float(x))[0] for x in outside)


def test_choice_and_bool_rules():
    entry = {"kind": "choice", "options": "abcd", "salt": "t", "hashes": quiz.answer_hashes("choice", "c", "t")}
    assert quiz.judge(entry, "c")[0]
    assert not any(quiz.judge(entry, x)[0] for x in ["a", "b", "d", "C", " c", "c ", 3, None, "cd"])
    assert "one lowercase letter" in quiz.judge(entry, "C")[1]
    entry = {"kind": "bool", "salt": "t", "hashes": quiz.answer_hashes("bool", False, "t")}
    assert quiz.judge(entry, False)[0] and quiz.judge(entry, np.bool_(False))[0]
    assert not any(quiz.judge(entry, x)[0] for x in [True, 0, "False", None])
    entry = {"kind": "number", "tol": 1.0, "salt": "t", "hashes": quiz.answer_hashes("number", 2.0, "t", 1.0)}
    assert quiz.judge(entry, np.float32(2.5))[0] and quiz.judge(entry, 2)[0]
    assert not any(quiz.judge(entry, x)[0] for x in [True, "2", math.nan, math.inf, None])


def test_function_questions_run_the_visible_example():
    entry = {"kind": "function", "name": "double", "visible_test": "assert double(2) == 4\nassert double(np.array([1]))[0] == 2\n"}
    assert quiz.judge(entry, lambda x: 2 * x)[0]
    ok, message = quiz.judge(entry, lambda x: x + 2)
    assert not ok and "assert double(np.array([1]))[0] == 2" in message

    def unfinished(x):
        raise NotImplementedError()

    assert "not written yet" in quiz.judge(entry, unfinished)[1]
    assert "should be a function" in quiz.judge(entry, 4)[1]


def test_check_prints_one_line_and_obeys_the_switch(monkeypatch):
    q = "01_number_formats"
    lines = []
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("COURSE_QUIZ_FEEDBACK", "on")
    assert quiz.check(q, "q15", 12.828125, echo=lines.append) is None   # quiz 01 Q15: 21e9 * 4.125 + 1e9 * 16 bits
    assert quiz.check(q, "q15", 11.0, echo=lines.append) is None
    assert lines[0].startswith("✓ q15") and lines[1].startswith("✗ q15") and "hint:" in lines[1]
    monkeypatch.setenv("COURSE_QUIZ_FEEDBACK", "off")
    quiz.check(q, "q15", 12.828125, echo=lines.append)
    assert "disabled" in lines[2] and "✓" not in lines[2]
    quiz.set_feedback(True)
    assert quiz.feedback_enabled()
    quiz.set_feedback(False)
    assert not quiz.feedback_enabled() and os.environ["COURSE_QUIZ_FEEDBACK"] == "off"
    monkeypatch.setenv("COURSE_QUIZ_FEEDBACK", "on")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    quiz.check(q, "q15", 12.828125, echo=lines.append)
    quiz.check(q, "q15", 11.0, echo=lines.append)
    assert len(lines) == 3, "while nbgrader grades, check() prints nothing (issue 23)"


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(CourseError, match="quiz='99_nope'.*available"):
        quiz.is_correct("99_nope", "q01", "a")
    with pytest.raises(CourseError, match="qid='q16'.*allowed"):
        quiz.is_correct("01_number_formats", "q16", "a")
    with pytest.raises(CourseError, match="enabled="):
        quiz.set_feedback("off")
    with pytest.raises(CourseError, match="tol="):
        quiz.answer_hashes("number", 1.0, "s", 0.0)


@pytest.mark.parametrize("module", ["courseutils.grading.quiz", "courseutils.quiz"])
def test_quiz_module_is_light(module):
    """Students' kernels import the checker (courseutils.quiz in released notebooks): no torch, no nbgrader.

    How long the import takes is measured by `make bench` (benchmarks/run.py, section imports)."""
    code = f"import sys; import {module}; print('torch' in sys.modules, 'nbgrader' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_numbers_from_any_library_are_accepted_alike():
    """expect_number (visible test) and the instant check accept exactly the same values (issue 17)."""
    torch = pytest.importorskip("torch")
    entry = {"kind": "number", "tol": 0.5, "salt": "t", "hashes": quiz.answer_hashes("number", 2.0, "t", 0.5)}
    good = [2, 2.0, np.float64(2.0), np.float32(2.0), np.int64(2), np.array(2.0), np.array(2, dtype=np.int32),
            torch.tensor(2.0), torch.tensor(2), torch.tensor(2.0, dtype=torch.float64),
            torch.tensor(2.0, requires_grad=True)]
    bad = [True, np.bool_(True), np.array(True), torch.tensor(True), "2", 2 + 0j, None, np.array([2.0]),
           torch.tensor([2.0]), [2.0], math.nan, np.array(math.inf), torch.tensor(math.nan)]
    for value in good:
        quiz.expect_number(value, "x")
        assert quiz.judge(entry, value)[0], f"check() rejects {value!r}"
    for value in bad:
        with pytest.raises(AssertionError):
            quiz.expect_number(value, "x")
        assert not quiz.judge(entry, value)[0], f"check() accepts {value!r}"
    assert not quiz.judge(entry, torch.tensor(3.0))[0] and not quiz.judge(entry, np.array(2.6))[0]
