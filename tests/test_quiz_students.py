"""The committed answer-free quiz copies (quizzes/student/) are exactly nbgrader's release output."""
import json

import pytest

from courseutils.grading import instructor as grading

QUIZZES = grading.quiz_ids()


def _sources(path):
    nb = json.loads(path.read_text())
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("students")
    grading.student_copies("all", out_dir=out)
    return out


@pytest.mark.parametrize("quiz", QUIZZES)
@pytest.mark.slow
def test_student_copy_is_current_and_answer_free(quiz, fresh):
    committed = grading.course_root() / "student" / quiz / f"{quiz}.ipynb"
    assert committed.is_file(), f"{committed} is missing: run `make quiz-keys`"
    assert _sources(committed) == _sources(fresh / quiz / f"{quiz}.ipynb"), "student copy is stale: run `make quiz-keys`"
    text = committed.read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
