"""Autograding with parallel workers (``autograde(workers=N)``, ``--workers``) gives the serial scores.

The same class (a solution, two partial and a wrong submission, and one unreadable
notebook) is graded twice from one released course root: by one worker in this process and by two worker processes sharing the gradebook.
Every question's score must agree, match what the submission was built to score, and the
unreadable notebook must fail alone. How fast a class is graded is measured by `make bench`,
not here.
"""
from __future__ import annotations

import shutil
import sqlite3

import nbformat
import pytest

from courseutils.core.errors import CourseError
from courseutils.grading import instructor as grading
from courseutils.grading.nbgrader_plugins import nbgrader_env

ROOT = grading.course_root()
QUIZ = grading.quiz_ids(ROOT)[0]


def _course(tmp_path, quiz: str = QUIZ):
    root = tmp_path / "quizzes"
    root.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "source" / quiz, root / "source" / quiz)
    return root


@pytest.fixture(scope="module")
def graded_twice(tmp_path_factory):
    root = _course(tmp_path_factory.mktemp("serial"))
    grading.release(QUIZ, root)
    samples = grading.sample_submissions(QUIZ, root)
    students = {"sol": "solution", "part": "partial", "bad": "wrong", "part2": "partial"}
    for student, kind in students.items():
        folder = root / "submitted" / student / QUIZ
        folder.mkdir(parents=True)
        nbformat.write(samples[kind][0], str(folder / f"{QUIZ}.ipynb"))
    broken = root / "submitted" / "broken" / QUIZ
    broken.mkdir(parents=True)
    (broken / f"{QUIZ}.ipynb").write_text('{"cells": [', encoding="utf-8")
    parallel = tmp_path_factory.mktemp("parallel") / "quizzes"
    shutil.copytree(root, parallel)  # the same release and gradebook, before any grading
    runs = {}
    for workers, where in ((1, root), (2, parallel)):
        report = grading.autograde(QUIZ, where, workers=workers, timeout=10, total_timeout=60, progress=False)[QUIZ]
        runs[workers] = dict(report=report, per_question=grading.question_scores(QUIZ, where))
    expected = {s: float(samples[kind][1]) for s, kind in students.items()}
    return dict(runs=runs, expected=expected, samples=samples)


@pytest.mark.slow
def test_two_workers_give_the_serial_scores_per_question(graded_twice):
    serial, parallel = graded_twice["runs"][1], graded_twice["runs"][2]
    assert serial["per_question"] == parallel["per_question"]
    assert serial["report"]["graded"] == parallel["report"]["graded"]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_scores_are_the_ones_built_in(graded_twice, workers):
    run = graded_twice["runs"][workers]
    got = {s: score for s, (score, total) in run["report"]["graded"].items()}
    assert got == graded_twice["expected"]
    # partial: the odd-numbered questions right, the even-numbered ones wrong
    per = run["per_question"]["part"]
    assert [per[f"q{i:02d}_test"] for i in range(1, 16)] == [1.0 if i % 2 else 0.0 for i in range(1, 16)]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_submission_fails_alone(graded_twice, workers):
    report = graded_twice["runs"][workers]["report"]
    assert report["failed"] == ["broken"]
    assert "broken" in report["logs"] and report["logs"]["broken"].strip()
    assert set(report["graded"]) == set(graded_twice["expected"])


def test_workers_must_be_a_positive_whole_number(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(CourseError, match="workers="):
            grading.autograde(QUIZ, _course(tmp_path / str(bad)), workers=bad)


def test_cli_rejects_zero_workers(tmp_path, capsys):
    assert grading.main(["autograde", "--root", str(_course(tmp_path)), "--workers", "0"]) == 2
    assert "workers=0" in capsys.readouterr().err


def test_default_workers_is_the_cpus_this_process_may_use():
    import os

    n = grading.default_workers()
    assert 1 <= n <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))


def test_workers_wait_for_the_gradebook_lock(tmp_path):
    """The autograde API's SQLite gradebook waits GRADEBOOK_BUSY_TIMEOUT s for another writer
    (SQLite's default is 5 s); a database named in nbgrader_config.py is left alone."""
    from nbgrader.api import Gradebook

    root = _course(tmp_path / "a")
    url = grading._autograde_api(root, None, None).coursedir.db_url
    assert url == f"sqlite:///{root / 'gradebook.db'}?timeout={grading.GRADEBOOK_BUSY_TIMEOUT}"
    with nbgrader_env(), Gradebook(url, "quant-course") as gb:
        busy_ms = gb.db.execute(__import__("sqlalchemy").text("PRAGMA busy_timeout")).scalar()
    assert busy_ms == 1000 * grading.GRADEBOOK_BUSY_TIMEOUT
    with sqlite3.connect(root / "gradebook.db") as db:  # the file is nbgrader's ordinary gradebook
        assert "assignment" in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}

    other = _course(tmp_path / "b")
    with open(other / "nbgrader_config.py", "a", encoding="utf-8") as f:
        f.write('\nc.CourseDirectory.db_url = "sqlite:////elsewhere/grades.db"\n')
    assert grading._autograde_api(other, None, None).coursedir.db_url == "sqlite:////elsewhere/grades.db"
