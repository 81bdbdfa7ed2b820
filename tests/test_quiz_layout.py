"""Every quiz under quizzes/source/ follows the conventions of quizzes/README.md.

Fast (no kernel): the notebooks are only read. New quizzes are picked up automatically.
"""
from __future__ import annotations

import re
from collections import Counter

import nbformat
import pytest

from courseutils.grading import instructor as grading
from courseutils.core.errors import CourseError

ROOT = grading.course_root()
QUIZZES = grading.quiz_ids(ROOT)


def _read(quiz):
    return nbformat.read(str(ROOT / "source" / quiz / f"{quiz}.ipynb"), as_version=4)


def test_quizzes_exist():
    assert "00_setup_and_tour" in QUIZZES and "01_number_formats" in QUIZZES


@pytest.mark.parametrize("quiz", QUIZZES)
def test_fifteen_graded_cells_one_point_each(quiz):
    nb = _read(quiz)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
              and not c.metadata["nbgrader"].get("solution")]
    assert len(graded) == 15
    assert [float(c.metadata["nbgrader"]["points"]) for c in graded] == [1.0] * 15
    assert [c.metadata["nbgrader"]["grade_id"] for c in graded] == [f"q{i:02d}_test" for i in range(1, 16)]
    assert all(c.metadata["nbgrader"].get("locked") for c in graded)


@pytest.mark.parametrize("quiz", QUIZZES)
def test_question_mix_follows_course_rules(quiz):
    questions = grading.parse_quiz(_read(quiz), quiz)  # raises on any broken convention
    kinds = Counter(q.kind for q in questions)
    assert len(questions) == 15
    assert kinds["number"] >= 4, kinds
    assert kinds["function"] >= 3, kinds
    assert kinds["choice"] + kinds["bool"] == 15 - kinds["number"] - kinds["function"]


@pytest.mark.parametrize("quiz", QUIZZES)
def test_prompts_state_the_tolerance_and_the_id(quiz):
    nb = _read(quiz)
    for q in grading.parse_quiz(nb, quiz):
        prompt = nb.cells[q.answer_cell - 1]
        assert prompt.cell_type == "markdown", f"{q.qid}: the cell before the answer must be its prompt"
        assert f"Q{q.qid[1:]}" in prompt.source, f"{q.qid}: the prompt should name Q{q.qid[1:]}"
        if q.kind == "number":
            assert f"±{q.meta['tol']:g}" in prompt.source, f"{q.qid}: the prompt must state ±{q.meta['tol']:g}"
        if q.kind == "choice":
            for letter in q.meta["options"]:
                assert f"({letter})" in prompt.source, f"{q.qid}: option ({letter}) missing from the prompt"


@pytest.mark.parametrize("quiz", QUIZZES)
def test_setup_cell_silences_stderr(quiz):
    nb = _read(quiz)
    setup = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
    assert len(setup) == 1, "one locked read-only cell with grade_id 'setup'"
    src = setup[0].source
    assert setup[0].metadata["nbgrader"]["locked"] and not setup[0].metadata["nbgrader"]["grade"]
    for needed in ('warnings.filterwarnings("ignore")', "logging.disable(logging.CRITICAL)",
                   'os.environ["TQDM_DISABLE"] = "1"', "from courseutils.grading.quiz import check"):
        assert needed in src
    first_question = min(q.answer_cell for q in grading.parse_quiz(nb, quiz))
    assert nb.cells.index(setup[0]) < first_question


@pytest.mark.parametrize("quiz", QUIZZES)
def test_source_notebook_is_clean(quiz):
    nb = _read(quiz)
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"cell {i}: outputs not stripped"
            assert not re.search(r"^\s*[%!]", c.source, re.M), f"cell {i}: no magics or shell escapes in quizzes"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("quiz", QUIZZES)
def test_hidden_asserts_carry_no_message(quiz):
    """Feedback keeps an error's message; a hidden assert's message would leak the hidden test."""
    import ast

    for q in grading.parse_quiz(_read(quiz), quiz):
        for node in ast.walk(ast.parse(q.hidden_test)):
            if isinstance(node, ast.Assert):
                assert node.msg is None, f"{q.qid}: hidden assert with a message (line {node.lineno})"


def test_parse_quiz_names_the_broken_cell():
    nb = _read(QUIZZES[0])
    q = grading.parse_quiz(nb, QUIZZES[0])[0]
    nb.cells[q.test_cell].source = nb.cells[q.test_cell].source.replace("### BEGIN HIDDEN TESTS", "")
    with pytest.raises(CourseError, match=r"cell \d+ \(q01_test\).*HIDDEN"):
        grading.parse_quiz(nb, QUIZZES[0])
    nb = _read(QUIZZES[0])
    nb.cells[q.check_cell].source = f'check("{QUIZZES[0]}", "q02", answer_q01)'
    with pytest.raises(CourseError, match="q02"):
        grading.parse_quiz(nb, QUIZZES[0])


@pytest.mark.parametrize("quiz", QUIZZES)
def test_givens_cell_follows_the_setup_cell(quiz):
    """One locked givens cell right after setup; its draw names only what it assigns, each range holds its value
    (quizzes/README.md, "The givens cell")."""
    from courseutils.grading import givens

    nb = _read(quiz)
    cells = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "givens"]
    setup = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
    assert len(cells) == 1 and cells[0] == setup[0] + 1, "one givens cell, right after the setup cell"
    cell = nb.cells[cells[0]]
    nbg = cell.metadata["nbgrader"]
    assert nbg["locked"] and not nbg["grade"] and not nbg["solution"] and cell.cell_type == "code"
    values = givens.parse_givens(cell.source, f"{quiz} givens")
    meta = cell.metadata.get("quiz", {})
    assert meta.get("kind") == "givens" and meta.get("draw"), "the givens cell says how an exam draws them"
    assert set(meta["draw"]) <= set(values)
    drawn = givens.draw_givens(values, meta["draw"], "layout test secret", quiz)
    assert set(drawn) == set(values)


@pytest.mark.parametrize("quiz", QUIZZES)
def test_number_questions_read_the_givens(quiz):
    """Every number question: the hidden test starts with '# @givens', uses _givens and no given by its bare name
    (a student may reassign those), the solution and the prompt use the givens it reads."""
    import ast

    from courseutils.grading import givens

    nb = _read(quiz)
    names = set(givens.parse_givens(givens.givens_cell(nb).source))
    for q in grading.parse_quiz(nb, quiz):
        if q.kind != "number":
            assert givens.MARKER not in q.hidden_test or "_givens[" in q.hidden_test
            continue
        assert q.hidden_test.strip().startswith(givens.MARKER), f"{q.qid}: the hidden test must start with {givens.MARKER}"
        used = set(re.findall(r"_givens\[\s*['\"](\w+)['\"]\s*\]", q.hidden_test))
        used |= {n for n in names if re.search(rf"\(\s*['\"]{n}['\"]", q.hidden_test)}   # names looked up in a loop
        assert used and used <= names, f"{q.qid}: the hidden test reads no given"
        bare = {n.id for n in ast.walk(ast.parse(q.hidden_test)) if isinstance(n, ast.Name)} & names
        assert not bare, f"{q.qid}: the hidden test reads {sorted(bare)} from the notebook, not from _givens"
        solution = nb.cells[q.answer_cell].source
        prompt = nb.cells[q.answer_cell - 1].source
        for name in used:
            assert re.search(rf"\b{name}\b", solution), f"{q.qid}: the solution does not use the given {name}"
            assert f"`{name}`" in prompt, f"{q.qid}: the prompt does not name the given `{name}`"
