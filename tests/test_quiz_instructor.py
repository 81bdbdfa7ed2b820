"""The instructor's workflow as a real course runs it (issue 23).

Fast tests: submission times (file time, --timestamp, zip entry time) in nbgrader's format;
an LMS zip mapped to students (dry run, names file, resubmissions, wrong quiz, never
overwriting); the quiz id stamped at release and inferred from check() cells for older
notebooks (exam variants included); student ids with '@'; failure reasons; the course root
found from the current directory; commands that would do nothing fail clearly; feedback
lines with question, title and hint; grading make targets never install.

One slow test runs a small class through nbgrader (due date, late penalty, a failed and a
refused submission, a missing student, manual grades kept over --force) and checks the
grades exports and the command's output.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import pytest

from courseutils.grading import instructor as grading, submissions
from courseutils.grading.nbgrader_plugins import HideTestOutputs, StampQuizId

ROOT = grading.course_root()
REPO = ROOT.parent
Q00, Q03 = "00_setup_and_tour", "03_measuring_quality"


def _student_copy(quiz: str):
    """The committed student copy: nbgrader's release output (tests/test_quiz_students.py)."""
    return nbformat.read(str(ROOT / "student" / quiz / f"{quiz}.ipynb"), as_version=4)


def _course(tmp_path: Path, quizzes=(Q00,)) -> Path:
    root = tmp_path / "quizzes"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    for q in quizzes:
        shutil.copytree(ROOT / "source" / q, root / "source" / q)
    return root


# --------------------------------------------------------------------------- times
def test_times_are_written_in_nbgrader_format_and_read_back_by_nbgrader():
    from nbgrader.utils import parse_utc

    when = submissions.parse_time("2026-12-01T18:05:00+01:00")
    assert when == dt.datetime(2026, 12, 1, 17, 5, tzinfo=dt.timezone.utc)
    assert submissions.parse_time("2026-12-01 17:05") == when  # no zone: UTC
    text = submissions.timestamp_text(when)
    assert text == "2026-12-01 17:05:00.000000 UTC"
    assert parse_utc(text).replace(tzinfo=dt.timezone.utc) == when
    with pytest.raises(grading.CourseError, match="timestamp='yesterday'.*ISO 8601"):
        submissions.parse_time("yesterday")


def test_collect_records_the_file_time_or_the_given_time_not_the_time_of_collecting(tmp_path):
    root = _course(tmp_path)
    nb = tmp_path / "ada.ipynb"
    nbformat.write(_student_copy(Q00), str(nb))
    saved = dt.datetime(2026, 11, 30, 9, 15, 0, tzinfo=dt.timezone.utc)
    os.utime(nb, (saved.timestamp(), saved.timestamp()))
    dest = grading.collect(Q00, "ada", nb, root)
    assert (dest.parent / "timestamp.txt").read_text() == "2026-11-30 09:15:00.000000 UTC"
    dest = grading.collect(Q00, "bob", nb, root, timestamp="2026-12-01 17:30:00+01:00")
    assert (dest.parent / "timestamp.txt").read_text() == "2026-12-01 16:30:00.000000 UTC"


def test_zip_entry_time_prefers_the_utc_field():
    info = zipfile.ZipInfo("a.ipynb", date_time=(2026, 12, 1, 18, 0, 0))
    from zoneinfo import ZoneInfo
    assert submissions.zip_entry_time(info, ZoneInfo("Europe/Berlin")) == dt.datetime(
        2026, 12, 1, 17, 0, tzinfo=dt.timezone.utc)
    utc = dt.datetime(2026, 12, 1, 16, 0, tzinfo=dt.timezone.utc)
    info.extra = b"UT\x05\x00\x01" + int(utc.timestamp()).to_bytes(4, "little")
    assert submissions.zip_entry_time(info, ZoneInfo("Europe/Berlin")) == utc


# --------------------------------------------------------------------------- LMS zip
def _lms_zip(tmp_path: Path) -> Path:
    right, other = nbformat.writes(_student_copy(Q00)), nbformat.writes(_student_copy(Q03))
    path = tmp_path / "submissions.zip"
    with zipfile.ZipFile(path, "w") as z:
        def add(name, text, when):
            z.writestr(zipfile.ZipInfo(name, date_time=when), text)
        add("lovelaceada_12345_678_00_setup_and_tour.ipynb", right, (2026, 12, 1, 16, 0, 0))   # Canvas
        add("turingalan_LATE_2345_679_quiz.ipynb", right, (2026, 12, 1, 18, 30, 0))           # Canvas, late
        add("Grace Hopper_3456_assignsubmission_file_/quiz00.ipynb", right, (2026, 12, 1, 15, 0, 0))  # Moodle
        add("noethere_4567_1_quiz.ipynb", other, (2026, 12, 1, 15, 0, 0))                      # quiz 03
        add("curiem_5678_1_quiz.ipynb", "not json", (2026, 12, 1, 15, 0, 0))
        add("lovelaceada_12345_600_old.ipynb", right, (2026, 11, 30, 10, 0, 0))                # older copy
        add("__MACOSX/._lovelaceada_12345_678_00_setup_and_tour.ipynb", "junk", (2026, 12, 1, 16, 0, 0))
        add("readme.txt", "hello", (2026, 12, 1, 16, 0, 0))
    return path


def test_lms_zip_dry_run_lists_who_maps_to_which_file_and_writes_nothing(tmp_path, capsys):
    root = _course(tmp_path)
    archive = _lms_zip(tmp_path)
    names = tmp_path / "names.csv"
    names.write_text("name,student\nGrace Hopper,ghopper\nlovelaceada,ada@uni.edu\nturingalan,alan\n"
                     "noethere,emmy\ncuriem,marie\n")
    status = grading.main(["collect", "--root", str(root), "--quiz", Q00, "--zip", str(archive),
                           "--names", str(names), "--dry-run"])
    out = capsys.readouterr().out
    assert status == 1  # two entries cannot be collected
    assert "would collect  lovelaceada_12345_678_00_setup_and_tour.ipynb -> ada@uni.edu" in out
    assert "Grace Hopper_3456_assignsubmission_file_/quiz00.ipynb -> ghopper" in out
    assert "turingalan_LATE_2345_679_quiz.ipynb -> alan (submitted 2026-12-01 18:30:00.000000 UTC)" in out
    assert "NOT COLLECTED  noethere_4567_1_quiz.ipynb: it is quiz '03_measuring_quality'" in out
    assert "NOT COLLECTED  curiem_5678_1_quiz.ipynb: not a readable notebook" in out
    assert "skipped        lovelaceada_12345_600_old.ipynb -> ada@uni.edu: older than" in out
    assert "__MACOSX" not in out and "readme" not in out
    assert not (root / "submitted").exists()

    plan = grading.collect_zip(Q00, archive, root, names=names)
    collected = sorted(p.parent.parent.name for p in (root / "submitted").glob(f"*/{Q00}/{Q00}.ipynb"))
    assert collected == ["ada@uni.edu", "alan", "ghopper"]
    stamp = (root / "submitted" / "alan" / Q00 / "timestamp.txt").read_text()
    assert stamp == "2026-12-01 18:30:00.000000 UTC"
    assert sum(1 for i in plan if not i.problem and not i.note) == 3
    again = grading.collect_zip(Q00, archive, root, names=names)  # a second run overwrites nothing
    assert all("never overwritten" in i.note for i in again if i.student == "alan")


def test_lms_zip_without_names_file_rejects_names_that_are_not_ids(tmp_path):
    root = _course(tmp_path)
    plan = {i.entry: i for i in grading.collect_zip(Q00, _lms_zip(tmp_path), root, dry_run=True)}
    assert plan["lovelaceada_12345_678_00_setup_and_tour.ipynb"].student == "lovelaceada"
    assert "not a valid student id" in plan["Grace Hopper_3456_assignsubmission_file_/quiz00.ipynb"].problem
    with pytest.raises(grading.CourseError, match="pattern=.*named group"):
        grading.collect_zip(Q00, _lms_zip(tmp_path), root, pattern=r"^(\w+)", dry_run=True)
    with pytest.raises(grading.CourseError, match="tz='Mars/Olympus'"):
        grading.collect_zip(Q00, _lms_zip(tmp_path), root, tz="Mars/Olympus", dry_run=True)
    nb = tmp_path / "ada.ipynb"
    nbformat.write(_student_copy(Q00), str(nb))
    assert grading.main(["collect", "--root", str(root), "--quiz", Q00, "--student", "ada", "--dry-run", str(nb)]) == 2
    assert grading.main(["collect", "--root", str(root), "--quiz", Q00, "--zip", "x.zip", "--student", "ada"]) == 2
    assert grading.main(["collect", "--root", str(root), "--quiz", Q00, "--student", "ada"]) == 2
    assert not (root / "submitted").exists()


# --------------------------------------------------------------------------- which quiz
def test_release_stamps_the_quiz_id():
    nb = nbformat.v4.new_notebook()
    nb, _ = StampQuizId().preprocess(nb, {"nbgrader": {"assignment": "01_number_formats_exam_2"}})
    assert submissions.notebook_quiz(nb) == "01_number_formats_exam_2"
    for q in grading.quiz_ids():  # the committed student copies are release output
        assert _student_copy(q).metadata["courseutils"]["quiz"] == q


def test_wrong_quiz_is_refused_also_for_notebooks_released_before_the_stamp(tmp_path):
    root = _course(tmp_path)
    old = _student_copy(Q03)
    del old.metadata["courseutils"]  # released before metadata.courseutils existed
    assert submissions.notebook_quiz(old) == Q03  # from its check("03_measuring_quality", ...) cells
    path = tmp_path / "emmy.ipynb"
    nbformat.write(old, str(path))
    with pytest.raises(grading.CourseError, match=f"is quiz '{Q03}', not '{Q00}': refused"):
        grading.collect(Q00, "emmy", path, root)
    assert not (root / "submitted").exists()


def test_exam_variants_keep_working(tmp_path):
    root = _course(tmp_path)
    variant = f"{Q00}_exam_1"
    shutil.copytree(root / "source" / Q00, root / "source" / variant)
    (root / "source" / variant / f"{Q00}.ipynb").rename(root / "source" / variant / f"{variant}.ipynb")
    exam = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer_q01 = 'a'")])
    path = tmp_path / "exam.ipynb"
    nbformat.write(exam, str(path))  # an old exam notebook: no stamp, no check cells -> accepted
    assert grading.collect(variant, "ada", path, root).is_file()
    exam.metadata["courseutils"] = {"quiz": variant}
    nbformat.write(exam, str(path))
    assert grading.collect(variant, "bob", path, root).is_file()
    with pytest.raises(grading.CourseError, match="refused"):
        grading.collect(Q00, "bob", path, root)  # the exam notebook is not the self-study quiz
    nbformat.write(_student_copy(Q00), str(path))
    with pytest.raises(grading.CourseError, match="refused"):
        grading.collect(variant, "carl", path, root)  # nor the other way round


# --------------------------------------------------------------------------- roster and ids
def test_ids_with_at_are_accepted_and_bad_ids_named(tmp_path):
    roster = tmp_path / "roster.txt"
    roster.write_text("ada@uni.edu\nbob.smith\n")
    assert grading.read_roster(roster) == ["ada@uni.edu", "bob.smith"]
    assert submissions.check_student("ada@uni.edu") == "ada@uni.edu"
    for bad in ("../eve", "@ada", "a b", "ada[2]", ""):
        with pytest.raises(grading.CourseError, match=r"student=.*'@'"):
            submissions.check_student(bad)


# --------------------------------------------------------------------------- failures
def test_failure_reason_is_one_line_naming_the_cause():
    log = ("[INFO] Autograding...\n[ERROR] There was an error processing assignment: x\n"
           "    nbformat.reader.NotJSONError: Notebook does not appear to be JSON: 'oops'\n"
           "[ERROR] Please see the the above traceback\n"
           "nbgrader.converters.base.NbGraderException: Please see the the above traceback for details")
    assert grading.failure_reason({"log": log}) == \
        "nbformat.reader.NotJSONError: Notebook does not appear to be JSON: 'oops'"
    stuck = {"log": "[ERROR] While processing assignment x, the kernel became unresponsive and we could not"}
    assert "kernel stopped answering" in grading.failure_reason(stuck)
    assert grading.failure_reason({"log": "", "error": ""}) == "nbgrader reported a failure without a log"
    assert "\n" not in grading.failure_reason({"log": log})


# --------------------------------------------------------------------------- course root and silent commands
def test_course_root_prefers_the_current_directory(tmp_path, monkeypatch, capsys):
    root = _course(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert grading.course_root() == root.resolve()
    assert "current directory" in grading.course_root_origin()
    monkeypatch.chdir(root)
    assert grading.course_root() == root.resolve()
    monkeypatch.chdir(tmp_path / "..")
    grading.main(["feedback", "--root", str(root), "--quiz", Q00])
    assert f"course root: {root.resolve()} (from --root)" in capsys.readouterr().err


def test_root_without_source_fails_clearly(tmp_path, capsys):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", empty)
    assert grading.main(["autograde", "--root", str(empty)]) == 2
    assert "has no source/ folder" in capsys.readouterr().err


def test_feedback_that_would_do_nothing_fails_clearly(tmp_path):
    root = _course(tmp_path)
    with pytest.raises(grading.CourseError, match=f"quiz='{Q00}' has no autograded submission.*run autograde"):
        grading.feedback(Q00, root)
    with pytest.raises(grading.CourseError, match="nothing to give feedback on"):
        grading.feedback("all", root)
    with pytest.raises(grading.CourseError, match="student='nobody' has no submission"):
        grading.feedback("all", root, student="nobody")


# --------------------------------------------------------------------------- feedback lines
def test_feedback_line_names_question_title_and_hint(tmp_path):
    root = tmp_path / "quizzes"
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("answer_q03 = 'b'", metadata={
            "nbgrader": {"grade_id": "q03_answer", "solution": True}, "quiz": {"hint": "count the blocks"}})])
    (root / "source" / "07_demo").mkdir(parents=True)
    nbformat.write(source, str(root / "source" / "07_demo" / "07_demo.ipynb"))
    test = {"nbgrader": {"grade_id": "q03_test", "grade": True, "solution": False, "points": 1}}
    graded = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("### Q03 · Bits per weight of Q4_0\n*(number)*"),
        nbformat.v4.new_code_cell("answer_q03 = 'a'", metadata={"nbgrader": {"grade_id": "q03_answer", "solution": True}}),
        nbformat.v4.new_code_cell("expect_choice(...)", metadata=test, outputs=[nbformat.v4.new_output(
            "error", ename="AssertionError", evalue="", traceback=["Traceback...", "assert answer_q03 == 'b'"])]),
        nbformat.v4.new_code_cell("x", metadata={**test, "nbgrader": {**test["nbgrader"], "grade_id": "q04_test"}},
                                  outputs=[nbformat.v4.new_output("error", ename="NameError",
                                                                  evalue="name 'answer_q04' is not defined",
                                                                  traceback=["a", "b"])])])
    nb, _ = HideTestOutputs(course_root=str(root)).preprocess(
        graded, {"nbgrader": {"assignment": "07_demo", "notebook": "07_demo"}})
    (line,) = nb.cells[2].outputs[0].traceback
    assert line == ("✗ Q03 · Bits per weight of Q4_0: the hidden test failed (AssertionError). "
                    "Hint: count the blocks")
    (line,) = nb.cells[3].outputs[0].traceback
    assert line == "✗ Q04: NameError: name 'answer_q04' is not defined"


# --------------------------------------------------------------------------- make
def test_grading_make_targets_never_install(tmp_path):
    """With pyproject.toml newer than the install stamp, `make test-fast` reinstalls; grading targets do not."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch(mode=0o755)
    (venv / ".installed").touch()

    def dry(*targets):
        return subprocess.run(["make", "-n", "-W", "pyproject.toml", *targets, f"VENV={venv}", "QUIZ=00_setup_and_tour",
                               "ZIP=x.zip", "STUDENT=ada"], cwd=REPO, capture_output=True, text=True, check=True).stdout

    assert "pip install" in dry("test-fast")  # the control: the stamp is out of date
    for target in ("release", "collect", "autograde", "feedback", "grades"):
        out = dry(target)
        assert "pip install" not in out and "courseutils.grading" in out, (target, out)


def test_make_help_documents_collect_student_and_force():
    out = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "ZIP=" in lines["collect"] and "STUDENT=" in lines["collect"]
    assert "STUDENT=" in lines["autograde"] and "FORCE=1" in lines["autograde"]


# --------------------------------------------------------------------------- a small class through nbgrader
@pytest.mark.slow
def test_a_class_with_due_date_late_penalty_failures_and_manual_grades(tmp_path, capfd):
    from nbgrader.api import Gradebook

    root = _course(tmp_path, (Q00, Q03))
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write('\nc.LateSubmissionPlugin.penalty_method = "zero"\n')
    grading.release(Q00, root)
    db = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db, "quant-course") as gb:
        gb.update_or_create_assignment(Q00, duedate="2026-12-01 17:00:00 UTC")
        gb.update_or_create_student("eve", first_name="Eve", last_name="Nakamura", email="eve@uni.edu")
    released = nbformat.read(str(root / "release" / Q00 / f"{Q00}.ipynb"), as_version=4)
    solution = grading.solution_submission(released, nbformat.read(str(root / "source" / Q00 / f"{Q00}.ipynb"), 4))
    wrong_q01 = nbformat.from_dict(json.loads(json.dumps(solution)))
    cell = next(c for c in wrong_q01.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q01_answer")
    right = cell.source.split('"')[1]
    cell.source = f'answer_q01 = "{"a" if right != "a" else "c"}"\n'
    files = {}
    for name, nb in {"solution": solution, "wrong": wrong_q01, "other": _student_copy(Q03)}.items():
        files[name] = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, str(files[name]))
    grading.collect(Q00, "ada@uni.edu", files["solution"], root, timestamp="2026-12-01 16:59:00")
    grading.collect(Q00, "bob", files["solution"], root, timestamp="2026-12-01 18:00:00")   # 3600 s late
    grading.collect(Q00, "dan", files["wrong"], root, timestamp="2026-12-01 12:00:00")
    broken = root / "submitted" / "carl" / Q00
    broken.mkdir(parents=True)
    (broken / f"{Q00}.ipynb").write_text('{"not": "a notebook"')
    misplaced = root / "submitted" / "dora" / Q00          # copied by hand, bypassing collect
    misplaced.mkdir(parents=True)
    shutil.copy(files["other"], misplaced / f"{Q00}.ipynb")

    capfd.readouterr()
    assert grading.main(["autograde", "--root", str(root), "--workers", "2", "--timeout", "20"]) == 1
    captured = capfd.readouterr()
    out = captured.out
    assert f"{Q00}  ada@uni.edu          15/15" in out and f"{Q00}  dan                  14/15" in out
    assert "carl                 FAILED: nbformat.reader.NotJSONError" in out
    assert f"dora                 FAILED: submitted/dora/{Q00}/{Q00}.ipynb is quiz '{Q03}'" in out
    assert "nothing to grade" not in out and "without encryption" not in captured.err + out
    (log_line,) = [line for line in out.splitlines() if "full log in" in line]
    log = Path(log_line.split("full log in ")[1]).read_text()
    assert "--- carl" in log and "Traceback" in log

    grading.feedback(Q00, root, student="dan")
    page = (root / "feedback" / "dan" / Q00 / f"{Q00}.html").read_text()
    assert "Q01 · Where tinycode comes from: the hidden test failed (AssertionError). Hint: nothing is downloaded" in page
    assert "instant feedback is skipped" not in page
    assert "cdnjs" not in page and "<script" not in page.lower() and 'class="math"' in page  # offline math

    with Gradebook(db, "quant-course") as gb:  # the instructor corrects Q02 of ada by hand
        grade = gb.find_grade("q02_test", Q00, Q00, "ada@uni.edu")
        grade.manual_score = 0.5
        gb.db.commit()
    assert grading.main(["autograde", "--root", str(root), "--quiz", Q00, "--student", "ada@uni.edu"]) == 0
    assert "graded before, unchanged since: not regraded" in capfd.readouterr().out
    assert grading.main(["autograde", "--root", str(root), "--quiz", Q00, "--student", "ada@uni.edu", "--force"]) == 0
    assert "its manual grades are kept" in capfd.readouterr().out

    assert grading.main(["grades", "--root", str(root), "--lms", "canvas", "--lms", "moodle"]) == 0
    rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(open(root / "grades.csv"))}
    ada, bob, carl, dora, eve = (rows[(Q00, s)] for s in ("ada@uni.edu", "bob", "carl", "dora", "eve"))
    assert (ada["status"], float(ada["score"]), float(ada["seconds_late"]), ada["manual_grades"]) == ("graded", 14.5, 0, "1")
    assert (bob["status"], float(bob["raw_score"]), float(bob["seconds_late"])) == ("graded", 15, 3600)
    assert float(bob["late_submission_penalty"]) == 15 and float(bob["score"]) == 0  # penalty_method "zero"
    assert carl["status"] == "failed" and "NotJSONError" in carl["reason"]
    assert dora["status"] == "failed" and "refused" in dora["reason"]
    assert (eve["status"], eve["last_name"]) == ("missing", "Nakamura")
    per_q = [r for r in csv.DictReader(open(root / "grades_by_question.csv")) if r["student_id"] == "ada@uni.edu"]
    assert len(per_q) == 15 and [r["manual"] for r in per_q if r["question"] == "q02_test"] == ["1"]
    canvas = list(csv.DictReader(open(root / "grades_canvas.csv")))
    assert list(canvas[0])[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    by_id = {r["SIS User ID"]: r for r in canvas}
    assert by_id["ada@uni.edu"][f"{Q00} (15)"] == "14.5" and by_id["carl"][f"{Q00} (15)"] == ""
    assert by_id["eve"]["Student"] == "Nakamura, Eve"
    moodle = list(csv.DictReader(open(root / "grades_moodle.csv")))
    assert {"ID number", "Email address"} <= set(moodle[0])
    assert json.loads((root / "logs" / "failures.json").read_text())[Q00].keys() == {"carl", "dora"}


def test_feedback_math_is_typeset_offline():
    from courseutils.grading.nbgrader_plugins import drop_mathjax, render_math

    text = render_math(r"Width $d_{ff}$, code `$HOME`, costs \$5, $$\frac{a}{b}$$ and $\nosuchmacro{x}$.")
    assert text.count('<img class="math"') == 2 and "data:image/svg+xml;base64," in text
    for tex in (r"0 \le e < 256", r"\tfrac12\delta^\top H\delta", r"\Big\lVert x \Big\rVert^2", r"a \qquad b"):
        assert "<img" in render_math(f"${tex}$"), tex  # LaTeX spellings mathtext lacks are translated
    assert "`$HOME`" in text and r"\$5" in text and r"`\nosuchmacro{x}`" in text  # left alone / as TeX
    page = ('<head><script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX"> </script>'
            '<script type="text/x-mathjax-config">init_mathjax = 1;</script><style>p{}</style></head>')
    assert drop_mathjax(page) == "<head><style>p{}</style></head>"


_RUN_ONE_CELL = """
import sys, nbformat
from courseutils.grading import instructor as g
from courseutils.grading.nbgrader_plugins import QuizExecute, nbgrader_env
args = g.load_config(sys.argv[1]).Execute.extra_arguments if sys.argv[2] == "course" else []
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
with nbgrader_env():
    QuizExecute(timeout=60, extra_arguments=list(args)).preprocess(nb, {"metadata": {"path": "."}})
"""


@pytest.mark.slow
def test_kernel_tcp_warning_is_silenced_by_the_course_config(tmp_path):
    """Each graded notebook starts a kernel; nbgrader_config.py keeps its start-up warning quiet."""
    import sys

    def stderr(mode):
        return subprocess.run([sys.executable, "-c", _RUN_ONE_CELL, str(ROOT), mode], cwd=tmp_path,
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stderr

    assert "without encryption" in stderr("plain")  # the control: nbgrader's default prints it
    assert "without encryption" not in stderr("course")
