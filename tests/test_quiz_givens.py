"""Exam-mode givens (issue 17): one locked givens cell, hidden tests that carry their own copy.

A made-up two-question quiz: Q01's hidden test reads ``_givens`` (the copy written in at
release), Q02's reads the notebook's variables, as today's quizzes do. A student who
reassigns the givens in an answer cell to the self-study values, and answers with the
self-study numbers, scores on Q02 and not on Q01 once an exam secret drew other givens.
"""
from __future__ import annotations

import copy
import shutil

import nbformat
import pytest

from courseutils.core.errors import CourseError
from courseutils.grading import givens, instructor as grading
from courseutils.grading.nbgrader_plugins import InstantiateGivens

ROOT = grading.course_root()
QUIZ = "99_givens"
DRAW = {"bpw": [4.5, 5.5, 0.01]}


def _cell(kind, source, nbgrader=None, quiz=None):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nbgrader is not None:
        cell.metadata["nbgrader"] = dict(nbgrader, schema_version=3)
    if quiz is not None:
        cell.metadata["quiz"] = quiz
    return cell


def _question(qid, hidden):
    ans = {"grade": False, "grade_id": f"{qid}_answer", "locked": False, "solution": True}
    test = {"grade": True, "grade_id": f"{qid}_test", "locked": True, "solution": False, "points": 1}
    return [_cell("markdown", f"### Q{qid[1:]} · File size\n*(number, tolerance ±0.5, 1 point)*\n\nIn GB."),
            _cell("code", f"# answer_{qid}: GB\n### BEGIN SOLUTION\nanswer_{qid} = n_params * bpw / 8 / 1e9\n"
                          "### END SOLUTION", ans, {"kind": "number", "tol": 0.5}),
            _cell("code", f'check("{QUIZ}", "{qid}", answer_{qid})'),
            _cell("code", f'expect_number(answer_{qid}, "answer_{qid}")\n### BEGIN HIDDEN TESTS\n{hidden}\n'
                          "### END HIDDEN TESTS", test)]


def _notebook():
    setup = next(c for c in nbformat.read(str(ROOT / "source" / "00_setup_and_tour" / "00_setup_and_tour.ipynb"),
                                          as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [_cell("markdown", "# Quiz 99 · givens"), copy.deepcopy(setup),
                _cell("code", "n_params = 70e9  # weights\nbpw = 4.83  # bits per weight\n",
                      {"grade": False, "grade_id": "givens", "locked": True, "solution": False},
                      {"kind": "givens", "draw": DRAW})]
    nb.cells += _question("q01", '# @givens\nassert abs(answer_q01 - _givens["n_params"] * _givens["bpw"] / 8 / 1e9) <= 0.5')
    nb.cells += _question("q02", "assert abs(answer_q02 - n_params * bpw / 8 / 1e9) <= 0.5")
    return nb


def _released_by_plugin(secret_file=""):
    nb = _notebook()
    InstantiateGivens(secret_file=str(secret_file)).preprocess(nb, {"nbgrader": {"assignment": QUIZ}})
    return nb


def _secret(tmp_path, text):
    path = tmp_path / f"secret-{abs(hash(text))}"
    path.write_text(text + "\n")
    return path


def test_parse_and_write_givens():
    assert givens.parse_givens("n = 70e9  # weights\nbpw = 4.83\nname = 'Q4_K'\n") == {"n": 70e9, "bpw": 4.83,
                                                                                         "name": "Q4_K"}
    assert givens.parse_givens(givens.givens_source({"a": 1, "b": 2.5})) == {"a": 1, "b": 2.5}
    for bad in ["n = 2 * 3", "import os", "n = m = 1", "n ="]:
        with pytest.raises(CourseError):
            givens.parse_givens(bad)


def test_self_study_release_copies_the_source_givens_into_marked_hidden_tests():
    nb = _released_by_plugin()
    assert nb.cells[2].source == _notebook().cells[2].source                     # givens cell untouched
    q01_test, q02_test = nb.cells[6].source, nb.cells[10].source
    assert "_givens = {'n_params': 70000000000.0, 'bpw': 4.83}" in q01_test and givens.MARKER not in q01_test
    assert q02_test == _notebook().cells[10].source                             # unmarked tests untouched


def test_exam_draws_givens_from_the_secret(tmp_path):
    drawn = {}
    for text in ["first exam secret", "second exam secret", "first exam secret"]:
        nb = _released_by_plugin(_secret(tmp_path, text))
        values = givens.parse_givens(nb.cells[2].source)
        assert values["n_params"] == 70e9 and 4.5 <= values["bpw"] <= 5.5
        assert abs(round((values["bpw"] - 4.5) / 0.01) * 0.01 + 4.5 - values["bpw"]) < 1e-9
        assert f"_givens = {values!r}" in nb.cells[6].source
        drawn.setdefault(text, []).append(values["bpw"])
    assert drawn["first exam secret"][0] == drawn["first exam secret"][1] != drawn["second exam secret"][0]
    spread = {givens.draw_givens({"bpw": 4.83}, DRAW, f"secret number {i}", QUIZ)["bpw"] for i in range(20)}
    assert len(spread) >= 15                                                    # 101 possible values
    with pytest.raises(CourseError, match="at least 8"):
        givens.read_secret(str(_secret(tmp_path, "short")))
    with pytest.raises(CourseError, match="does not assign"):
        givens.draw_givens({"bpw": 4.83}, {"d": [1, 2, 1]}, "a secret!", QUIZ)


def test_givens_cell_rules():
    nb = _notebook()
    nb.cells[2].metadata["nbgrader"]["locked"] = False
    with pytest.raises(CourseError, match="read-only"):
        InstantiateGivens().preprocess(nb, {})
    nb = _notebook()
    del nb.cells[2]
    with pytest.raises(CourseError, match="no givens cell"):
        InstantiateGivens().preprocess(nb, {})
    quiz_nb = _notebook()                                                        # a quiz without givens
    del quiz_nb.cells[2]
    quiz_nb.cells[5].source = quiz_nb.cells[5].source.replace(givens.MARKER + "\n", "")
    before = copy.deepcopy(quiz_nb)
    InstantiateGivens().preprocess(quiz_nb, {})
    assert quiz_nb == before                                                     # is released unchanged


def test_reassigning_givens_gains_nothing_through_nbgrader(tmp_path):
    """Release with a secret, autograde an honest and a copying submission with nbgrader itself."""
    root = tmp_path / "quizzes"
    (root / "source" / QUIZ).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    nbformat.write(_notebook(), str(root / "source" / QUIZ / f"{QUIZ}.ipynb"))
    secret = next(s for s in (_secret(tmp_path, f"exam secret {i}") for i in range(50))
                  if abs(givens.draw_givens({"n_params": 70e9, "bpw": 4.83}, DRAW, givens.read_secret(str(s)),
                                            QUIZ)["bpw"] - 4.83) > 0.1)
    released_path = grading.release(QUIZ, root, secret_file=secret)[0]
    released = nbformat.read(str(released_path), as_version=4)
    exam = givens.parse_givens(released.cells[2].source)
    assert exam["bpw"] != 4.83 and "_givens = " not in "\n".join(c.source for c in released.cells)
    source = nbformat.read(str(root / "source" / QUIZ / f"{QUIZ}.ipynb"), as_version=4)
    honest = grading.solution_submission(released, source)
    copying = copy.deepcopy(honest)
    for i in (4, 8):  # reassign the self-study givens, answer with the self-study number
        var = "answer_q01" if i == 4 else "answer_q02"
        copying.cells[i].source = f"n_params = 70e9\nbpw = 4.83\n{var} = 42.2625\n"
    for student, nb in [("honest", honest), ("copying", copying)]:
        folder = root / "submitted" / student / QUIZ
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{QUIZ}.ipynb"))
    report = grading.autograde(QUIZ, root, timeout=20, total_timeout=60)[QUIZ]
    per = grading.question_scores(QUIZ, root)
    assert report["failed"] == [], report["log"][-2000:]
    assert per["honest"] == {"q01_test": 1.0, "q02_test": 1.0}
    # Q01 (hidden test with its own givens) is not fooled; Q02 (reads the notebook's variables) is
    assert per["copying"] == {"q01_test": 0.0, "q02_test": 1.0}


def test_keys_and_audit_run_the_marked_tests_with_the_source_givens(tmp_path):
    """`keys` and `audit` execute the instructor notebook itself, where '# @givens' is only a comment:
    they must hand the marked hidden tests the source's givens first, or `_givens` is undefined."""
    from courseutils.grading import audit, quiz_keys

    root = tmp_path / "quizzes"
    (root / "source" / QUIZ).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    nbformat.write(_notebook(), str(root / "source" / QUIZ / f"{QUIZ}.ipynb"))
    questions, answers, run = quiz_keys.execute_solutions(QUIZ, root)
    assert "_givens = {'n_params': 70000000000.0, 'bpw': 4.83}" in run.cells[questions[0].test_cell].source
    assert answers["q01"] == pytest.approx(70e9 * 4.83 / 8 / 1e9)
    record = audit.load_quiz(QUIZ, root)
    assert record.type_failures == [] and [i.answer for i in record.items] == [answers["q01"], answers["q02"]]
    source = nbformat.read(str(root / "source" / QUIZ / f"{QUIZ}.ipynb"), as_version=4)
    assert givens.MARKER in source.cells[6].source and "_givens = " not in source.cells[6].source  # source untouched
