"""The whole instructor pipeline on every quiz, with nbgrader's own Python API.

For each quiz under quizzes/source/, in a temporary copy of the course root (the real
quizzes/ folder is never written): execute the instructor notebook (keys must match the
shipped ones and hold no plain answer), release, build a batch of submissions, autograde
the batch in one autograde() call (a worker process per CPU), generate feedback, and
check every score.

Students in each batch:
    solution  the instructor's answers pasted into the released notebook  -> 15/15
    blank     the released notebook untouched                              -> 0
    wrong     every answer replaced by a plausible wrong one                -> 0, question by question
    near      numbers moved by 0.8 x their tolerance; one answer with a syntax error -> 14
and, for the first quiz only (they test nbgrader's configuration, not the quiz):
    loop      an endless loop in one answer cell (interrupted by the cell timeout) -> 14
    stuck     an endless loop that ignores interrupts: flagged as failed, others unaffected
    deleted   one test cell deleted (nbgrader puts it back) and one answer deleted -> 14
"""
from __future__ import annotations

import copy
import csv
import html
import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from courseutils.grading import instructor as grading, item_stats, quiz
from courseutils.grading.nbgrader_plugins import nbgrader_env

ROOT = grading.course_root()
QUIZZES = grading.quiz_ids(ROOT)
CELL_TIMEOUT = 10          # seconds per cell in tests (nbgrader_config.py says 60)
TOTAL_TIMEOUT = 60         # seconds per notebook in tests
TIMINGS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------- building submissions
def _wrong_answer(q: grading.Question, answer) -> str:
    """Source of an answer cell holding a plausible wrong answer to ``q`` (the grading helper's),
    after checking that a number's wrong value lies beyond 2 tolerances, or the test proves nothing."""
    if q.kind == "number":
        value = q.meta.get("wrong", answer + max(5 * q.meta["tol"], abs(answer)))
        assert abs(value - answer) > 2 * q.meta["tol"], f"{q.qid}: 'wrong' lies within 2 tolerances of the answer"
    return grading.wrong_answer_source(q, answer)


def _set_answer(nb, q: grading.Question, source: str) -> None:
    nb.cells[q.answer_cell].source = source


def _submit(root: Path, quiz_id: str, student: str, nb) -> None:
    folder = root / "submitted" / student / quiz_id
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{quiz_id}.ipynb"))


def _text_of_html(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def _distinctive_hidden_lines(source_nb, questions) -> list[str]:
    """Hidden-test lines (12+ characters) that appear nowhere else in the instructor notebook."""
    hidden = {q.test_cell for q in questions}
    elsewhere = "\n".join(c.source for i, c in enumerate(source_nb.cells) if i not in hidden)
    elsewhere += "\n".join(q.visible_test for q in questions)
    lines = {line.strip() for q in questions for line in q.hidden_test.splitlines()}
    return sorted(line for line in lines if len(line) >= 12 and line not in elsewhere)


# --------------------------------------------------------------------------- one batch per quiz
# Each batch executes, releases and autogrades a quiz in nbgrader (20-90 s): every test using it is slow.
@pytest.fixture(scope="module", params=[pytest.param(q, marks=pytest.mark.slow) for q in QUIZZES])
def batch(request, tmp_path_factory):
    quiz_id = request.param
    root = tmp_path_factory.mktemp(f"course-{quiz_id}") / "quizzes"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "source" / quiz_id, root / "source" / quiz_id)
    t = {}

    start = time.perf_counter()
    questions, answers, _ = grading.execute_solutions(quiz_id, root)
    key, _ = grading.build_key(quiz_id, root, solved=(questions, answers))
    t["execute_solutions"] = time.perf_counter() - start

    start = time.perf_counter()
    released_path = grading.release(quiz_id, root)[0]
    t["release"] = time.perf_counter() - start
    source = nbformat.read(str(root / "source" / quiz_id / f"{quiz_id}.ipynb"), as_version=4)
    released = nbformat.read(str(released_path), as_version=4)
    solution = grading.solution_submission(released, source)

    expected: dict[str, float] = {"solution": 15, "blank": 0, "wrong": 0}
    _submit(root, quiz_id, "solution", solution)
    _submit(root, quiz_id, "blank", released)
    wrong = copy.deepcopy(released)
    for q in questions:
        _set_answer(wrong, q, _wrong_answer(q, answers[q.qid]))
    _submit(root, quiz_id, "wrong", wrong)
    near = copy.deepcopy(solution)
    for q in questions:
        if q.kind == "number":
            _set_answer(near, q, f"{q.variable} = {answers[q.qid] + 0.8 * q.meta['tol']!r}\n")
    broken = next(q for q in reversed(questions) if q.kind != "number")
    _set_answer(near, broken, f"{broken.variable} = (\n")
    _submit(root, quiz_id, "near", near)
    expected["near"] = 14
    robustness = quiz_id == QUIZZES[0]
    if robustness:
        loop = copy.deepcopy(solution)
        _set_answer(loop, questions[0], "while True:\n    pass\n" + loop.cells[questions[0].answer_cell].source)
        _submit(root, quiz_id, "loop", loop)
        stuck = copy.deepcopy(solution)
        _set_answer(stuck, questions[1], "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                         "while True:\n    pass\n")
        _submit(root, quiz_id, "stuck", stuck)
        deleted = copy.deepcopy(solution)
        gone = {questions[2].test_cell, questions[-1].answer_cell, questions[-1].check_cell,
                questions[-1].answer_cell - 1}
        deleted.cells = [c for i, c in enumerate(deleted.cells) if i not in gone]
        _submit(root, quiz_id, "deleted", deleted)
        expected.update(loop=14, deleted=14)
    submitted_before = {p: p.read_bytes() for p in (root / "submitted").rglob("*.ipynb")}

    start = time.perf_counter()
    report = grading.autograde(quiz_id, root, timeout=CELL_TIMEOUT, total_timeout=TOTAL_TIMEOUT)[quiz_id]
    t["autograde_batch"] = time.perf_counter() - start
    t["students"] = len(list((root / "submitted").iterdir()))

    start = time.perf_counter()
    feedback = grading.feedback(quiz_id, root)
    t["feedback"] = time.perf_counter() - start
    TIMINGS[quiz_id] = t
    print(f"\n{quiz_id} timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in t.items()))
    return dict(quiz=quiz_id, root=root, questions=questions, answers=answers, key=key, source=source,
                released=released, report=report, expected=expected, feedback=feedback,
                per_question=grading.question_scores(quiz_id, root), robustness=robustness,
                submitted_before=submitted_before)


# --------------------------------------------------------------------------- keys
def test_shipped_key_equals_regenerated_key(batch):
    shipped = json.loads((quiz.keys_dir() / f"{batch['quiz']}.json").read_text(encoding="utf-8"))
    assert shipped == batch["key"], "the shipped key differs from one built now: run `make quiz-keys`"


def test_key_holds_no_plain_answer(batch):
    text = json.dumps(batch["key"], ensure_ascii=False)
    for q in batch["questions"]:
        entry = json.dumps(batch["key"]["questions"][q.qid], ensure_ascii=False)
        a = batch["answers"][q.qid]
        if q.kind == "choice":
            assert f'"{a}"' not in entry and f"({a})" not in entry, f"{q.qid}: the letter appears in the key"
        if q.kind == "number":
            forms = {repr(a), f"{a:g}", f"{a:.2f}", f"{a:.3g}"} - {"0", "0.0", "0.00"}
            assert not [f for f in forms if re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", entry)], \
                f"{q.qid}: the number appears in the key"
            assert entry.count('"tol"') == 1
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN" not in text


def test_instant_check_accepts_right_and_rejects_wrong(batch):
    key, answers = batch["key"], batch["answers"]
    for q in batch["questions"]:
        entry = key["questions"][q.qid]
        if q.kind == "function":
            right, bad = {"np": __import__("numpy"), "math": __import__("math")}, {}
            bad.update(right)
            code = grading._strip_solution_markers(batch["source"].cells[q.answer_cell].source)
            exec(compile(code, f"<{q.qid} solution>", "exec"), right)
            exec(compile(q.meta["wrong"], f"<{q.qid} wrong>", "exec"), bad)
            assert quiz.judge(entry, right[q.variable])[0], f"{q.qid}: the solution fails its visible example"
            continue
        assert quiz.judge(entry, answers[q.qid])[0], f"{q.qid}: check() rejects the key answer"
        wrong_src = _wrong_answer(q, answers[q.qid])
        wrong_value = eval(wrong_src.split("=", 1)[1])
        assert not quiz.judge(entry, wrong_value)[0], f"{q.qid}: check() accepts the wrong answer {wrong_value!r}"
        if q.kind == "number":
            tol = q.meta["tol"]
            assert quiz.judge(entry, answers[q.qid] + 0.8 * tol)[0] and quiz.judge(entry, answers[q.qid] - 0.8 * tol)[0]
            assert not quiz.judge(entry, answers[q.qid] + 1.2 * tol)[0]


# --------------------------------------------------------------------------- release
def test_release_has_no_solution_and_no_hidden_test(batch):
    released, source = batch["released"], batch["source"]
    text = "\n".join(c.source for c in released.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text
    assert not any("quiz" in c.metadata for c in released.cells), "authoring metadata left in the release"
    for q in batch["questions"]:
        for line in _distinctive_hidden_lines(source, batch["questions"]):
            assert line not in text, f"hidden test line released: {line}"
        sol = grading._strip_solution_markers(source.cells[q.answer_cell].source).splitlines()
        header = set(released.cells[q.answer_cell].source.splitlines())
        others = {ln.strip() for i, c in enumerate(source.cells) if i != q.answer_cell for ln in c.source.splitlines()}
        released_lines = {ln.strip() for ln in text.splitlines()}
        leaked = [ln for ln in sol if len(ln.strip()) >= 12 and ln not in header
                  and ln.strip() in released_lines and ln.strip() not in others]
        assert not leaked, f"{q.qid}: solution lines in the release: {leaked}"
        assert "raise NotImplementedError()" in released.cells[q.answer_cell].source
    graded = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(graded) == 15


# --------------------------------------------------------------------------- autograde
def test_batch_finished_and_scores_are_right(batch):
    report, expected = batch["report"], batch["expected"]
    got = {s: score for s, (score, total) in report["graded"].items()}
    assert all(total == 15 for _, total in report["graded"].values())
    assert got == expected, f"scores {got} != expected {expected}\n{report['log'][-3000:]}"
    assert report["failed"] == (["stuck"] if batch["robustness"] else [])


def test_every_wrong_answer_scores_zero(batch):
    scored = [cell for cell, score in batch["per_question"]["wrong"].items() if score > 0]
    assert not scored, f"plausible wrong answers that still score: {scored}"
    assert len(batch["per_question"]["wrong"]) == 15


def test_solution_scores_every_question(batch):
    missed = [cell for cell, score in batch["per_question"]["solution"].items() if score != 1]
    assert not missed and len(batch["per_question"]["solution"]) == 15


def test_failures_hit_only_their_question(batch):
    per = batch["per_question"]
    qs = batch["questions"]
    broken = next(q for q in reversed(qs) if q.kind != "number")
    assert [c for c, s in per["near"].items() if s == 0] == [f"{broken.qid}_test"]
    if batch["robustness"]:
        assert [c for c, s in per["loop"].items() if s == 0] == [f"{qs[0].qid}_test"]
        assert [c for c, s in per["deleted"].items() if s == 0] == [f"{qs[-1].qid}_test"]


def test_submissions_are_never_modified(batch):
    after = {p: p.read_bytes() for p in (batch["root"] / "submitted").rglob("*.ipynb")}
    assert after == batch["submitted_before"]


# --------------------------------------------------------------------------- feedback
def test_feedback_contains_no_hidden_test(batch):
    lines = _distinctive_hidden_lines(batch["source"], batch["questions"])
    assert lines, "no distinctive hidden-test line to look for"
    students = set(batch["report"]["graded"])
    assert {p.parent.parent.name for p in batch["feedback"]} == students
    for path in batch["feedback"]:
        text = _text_of_html(path)
        assert "HIDDEN TESTS" not in text
        leaked = [line for line in lines if line in text]
        assert not leaked, f"{path}: hidden test lines in feedback: {leaked[:3]}"
    if batch["robustness"]:
        _default_nbgrader_feedback_would_leak(batch, lines)


def _default_nbgrader_feedback_would_leak(batch, lines):
    """The control (run on the first quiz): nbgrader's default feedback preprocessors do show
    hidden tests, so the check above can fail and nbgrader_config.py is what prevents the leak."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cfg = grading.load_config(batch["root"])
    cfg.GenerateFeedback.preprocessors = ["nbgrader.preprocessors.GetGrades",
                                          "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    cfg.CourseDirectory.feedback_directory = "feedback_default"
    api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
    with nbgrader_env():
        assert api.generate_feedback(batch["quiz"], "wrong", force=True)["success"]
    text = _text_of_html(batch["root"] / "feedback_default" / "wrong" / batch["quiz"] / f"{batch['quiz']}.html")
    assert "BEGIN HIDDEN TESTS" in text and any(line in text for line in lines)


def test_feedback_test_cells_show_one_line_per_error(batch):
    """HideTestOutputs: a failing test cell keeps only 'Error: message', no traceback, no prints."""
    path = batch["root"] / "autograded" / "wrong" / batch["quiz"] / f"{batch['quiz']}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    tests = [q.test_cell for q in batch["questions"]]
    before = [nb.cells[i].outputs for i in tests]
    assert all(any(o.output_type == "error" and len(o.traceback) > 1 for o in outs) for outs in before)
    nb, _ = grading.HideTestOutputs().preprocess(nb, {})
    for i in tests:
        outs = nb.cells[i].outputs
        assert len(outs) == 1 and outs[0].output_type == "error" and len(outs[0].traceback) == 1
        assert "Traceback" not in outs[0].traceback[0] and "\n" not in outs[0].traceback[0]


def test_grades_csv(batch):
    out = grading.export_grades(root=batch["root"])
    rows = out.read_text().strip().splitlines()
    header = rows[0].split(",")
    assert header[:4] == ["assignment", "duedate", "timestamp", "student_id"]
    scores = {r.split(",")[3]: float(r.split(",")[header.index("score")]) for r in rows[1:]}
    for student, score in batch["expected"].items():
        assert scores[student] == score


def test_item_stats(batch, capsys):
    """`grades` also writes item statistics: difficulty from the gradebook, options read from autograded/."""
    assert grading.main(["grades", "--root", str(batch["root"]), "--out", str(batch["root"] / "g.csv")]) == 0
    assert "item_stats.csv" in capsys.readouterr().out
    written = grading.export_item_stats(batch["root"])
    assert [p.name for p in written] == ["item_stats.csv", "item_stats.png"]
    rows = {r["question"]: r for r in csv.DictReader(written[0].open(encoding="utf-8"))}
    per = batch["per_question"]
    answers = item_stats.submitted_answers(batch["quiz"], batch["root"])
    assert list(rows) == [q.qid for q in batch["questions"]]
    for q in batch["questions"]:
        row, right = rows[q.qid], batch["answers"][q.qid]
        scores = [per[s][f"{q.qid}_test"] for s in per]
        assert int(row["n_students"]) == len(per)
        assert float(row["difficulty"]) == pytest.approx(sum(scores) / len(scores), abs=1e-4)
        if q.kind == "choice":
            wrong = q.meta.get("wrong") or next(o for o in q.meta["options"] if o != right)
            assert answers["solution"][q.qid] == right and answers["wrong"][q.qid] == wrong
            assert answers["blank"][q.qid] is None
            assert row["correct_option"] == right and f"{wrong}:" in row["wrong_choices"]
            counts = dict(kv.split(":") for kv in row["option_counts"].split())
            assert int(counts[right]) >= 1 and int(counts[wrong]) >= 1


# --------------------------------------------------------------------------- tools around the batch
def test_collect_never_overwrites_a_submission(tmp_path):
    root = tmp_path / "quizzes"
    quiz_id = QUIZZES[0]
    shutil.copytree(ROOT / "source" / quiz_id, root / "source" / quiz_id)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    first = tmp_path / "first.ipynb"
    shutil.copy(ROOT / "source" / quiz_id / f"{quiz_id}.ipynb", first)
    dest = grading.collect(quiz_id, "ada", first, root)
    assert dest == root / "submitted" / "ada" / quiz_id / f"{quiz_id}.ipynb"
    assert (dest.parent / "timestamp.txt").is_file()
    before = dest.read_bytes()
    with pytest.raises(grading.CourseError, match="never overwritten"):
        grading.collect(quiz_id, "ada", first, root)
    assert dest.read_bytes() == before
    with pytest.raises(grading.CourseError, match="student="):
        grading.collect(quiz_id, "../eve", first, root)
    with pytest.raises(grading.CourseError, match="quiz="):
        grading.collect("99_none", "ada", first, root)
    (tmp_path / "notes.txt").write_text("not a notebook")
    with pytest.raises(grading.CourseError, match="not a readable notebook"):
        grading.collect(quiz_id, "bob", tmp_path / "notes.txt", root)
    assert not (root / "submitted" / "bob").exists()


@pytest.mark.parametrize("command", ["keys", "release", "collect", "autograde", "feedback", "grades"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        grading.main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m courseutils.grading " + command in capsys.readouterr().out


@pytest.mark.slow
def test_total_time_budget_stops_the_notebook(tmp_path):
    """QuizExecute: cells past the notebook's total budget are not run and get an error."""
    from courseutils.grading.nbgrader_plugins import QuizExecute

    sources = ["import time; time.sleep(1)", "time.sleep(30)", "x = 1", "y = 2"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with nbgrader_env():
        nb, _ = QuizExecute(timeout=60, total_timeout=5).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    first, second = nb.cells[0].outputs, nb.cells[1].outputs
    assert not any(o.output_type == "error" for o in first)
    assert any(o.output_type == "error" for o in second), "the second cell should be cut at the budget"
    for cell in nb.cells[2:]:
        assert [o.ename for o in cell.outputs] == ["TotalTimeoutError"]


@pytest.mark.slow
def test_in_process_alembic_head_matches_nbgrader():
    """nbgrader_env replaces nbgrader's `alembic heads` subprocess by an in-process read."""
    import subprocess
    import sys

    from courseutils.grading.nbgrader_plugins import _alembic_head

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    code = "import nbgrader.api as a; print(a.get_alembic_version())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == _alembic_head()
