"""Exam mode (issue 17): variants drawn from secrets give the self-study keys and answers no use.

Fast tests build variants in memory (:func:`courseutils.grading.exam.build_variant`) and run
them in this process; the slow test releases variants of real quizzes with
``release_exam`` into a temporary course and autogrades them with nbgrader itself.
"""
from __future__ import annotations

import csv
import re
import shutil
import statistics

import nbformat
import pytest

from courseutils.core.errors import CourseError
from courseutils.grading import audit, exam, givens, instructor as grading, quiz
from courseutils.grading.quiz_keys import is_exam_variant, parse_quiz

ROOT = grading.course_root()
QUIZZES = grading.quiz_ids(ROOT)
SECRETS = [f"exam secret number {i:02d} of the course" for i in range(20)]


def _source(quiz_id):
    return nbformat.read(str(ROOT / "source" / quiz_id / f"{quiz_id}.ipynb"), as_version=4)


def _run(nb, quiz_id):
    """Execute a quiz notebook here (hidden tests with their givens copy); returns the answers."""
    return audit._run_quiz(givens.with_source_givens(nb), quiz_id, parse_quiz(nb, quiz_id), False)[0]


def _option_texts(markdown):
    return {m.group(1): m.group(2) for m in map(audit._OPTION.match, markdown.splitlines()) if m}


# --------------------------------------------------------------------------- what a variant is
@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_two_secrets_give_different_givens_and_option_orders(quiz_id):
    nb = _source(quiz_id)
    first, second = (exam.build_variant(nb, quiz_id, s, 1) for s in SECRETS[:2])
    drawn = givens.givens_cell(nb).metadata["quiz"]["draw"]
    assert set(drawn) and set(first.givens) == set(givens.parse_givens(givens.givens_cell(nb).source))
    changed = [name for name in drawn if first.givens[name] != second.givens[name]]
    assert len(changed) >= len(drawn) // 2, f"only {changed} of {sorted(drawn)} differ"
    assert first.orders.keys() == second.orders.keys() and first.orders
    assert first.orders != second.orders
    again = exam.build_variant(nb, quiz_id, SECRETS[0], 1)                    # the same secret: the same exam
    assert nbformat.writes(again.notebook) == nbformat.writes(first.notebook)
    assert nbformat.writes(nb) == nbformat.writes(_source(quiz_id)), "build_variant changed its input"


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_variant_keeps_every_right_option_and_drops_the_checks(quiz_id):
    nb = _source(quiz_id)
    questions = {q.qid: q for q in parse_quiz(nb, quiz_id)}
    for k, secret in enumerate(SECRETS[:3], 1):
        v = exam.build_variant(nb, quiz_id, secret, k)
        assert v.assignment == f"{quiz_id}_exam_{k}" and is_exam_variant(v.assignment)
        assert secret not in nbformat.writes(v.notebook)
        vq = {q.qid: q for q in parse_quiz(v.notebook, v.assignment)}
        assert vq.keys() == questions.keys() and all(q.check_cell == -1 for q in vq.values())
        assert not [c for c in v.notebook.cells if c.source.lstrip().startswith("check(")]
        assert "colab-badge" in nb.cells[0].source and "colab-badge" not in v.notebook.cells[0].source, \
            "an exam variant has no badge: it would open the self-study quiz"
        assert "\n\n\n" not in v.notebook.cells[0].source
        for qid, (old, new) in v.answers.items():
            src_q, var_q = questions[qid], vq[qid]
            before = _option_texts(nb.cells[src_q.answer_cell - 1].source)
            after = _option_texts(v.notebook.cells[var_q.answer_cell - 1].source)
            assert list(after) == sorted(before), f"{qid}: options not relabelled a, b, c, ... in order"
            assert sorted(after.values()) == sorted(before.values())
            assert after[new] == before[old], f"{qid}: the right option moved without its letter"
            assert [after[letter] for letter in sorted(after)] == [before[o] for o in v.orders[qid]]
            assert re.search(rf'answer_{qid}\s*==\s*"{new}"', var_q.hidden_test)
            assert re.search(rf'answer_{qid} = "{new}"', v.notebook.cells[var_q.answer_cell].source)


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_variant_solutions_pass_and_self_study_numbers_fail(quiz_id):
    """In this process: each variant's solutions pass its hidden tests (with the drawn givens), and the
    self-study number answers fail wherever the drawn givens move the answer by more than the tolerance."""
    nb = _source(quiz_id)
    questions = parse_quiz(nb, quiz_id)
    self_study = _run(nb, quiz_id)
    moved = 0
    for k, secret in enumerate(SECRETS[:4], 1):
        v = exam.build_variant(nb, quiz_id, secret, k)
        answers = _run(v.notebook, v.assignment)                # raises if a solution fails its own test
        run = givens.with_source_givens(v.notebook)
        vq = {q.qid: q for q in parse_quiz(v.notebook, v.assignment)}
        for q in questions:
            if q.kind != "number" or abs(answers[q.qid] - self_study[q.qid]) <= q.meta["tol"]:
                continue
            moved += 1
            test = run.cells[vq[q.qid].test_cell].source.replace("### BEGIN HIDDEN TESTS", "").replace(
                "### END HIDDEN TESTS", "")
            namespace = {"np": __import__("numpy"), "math": __import__("math"), "expect_number": quiz.expect_number,
                         q.variable: self_study[q.qid]}
            with pytest.raises(AssertionError):
                exec(compile(test, f"<{v.assignment} {q.qid}>", "exec"), namespace)
    n_numbers = sum(q.kind == "number" for q in questions)
    assert moved >= 3 * n_numbers, f"only {moved} of {4 * n_numbers} number answers moved with the givens"


def test_copied_self_study_letters_score_at_chance(capsys):
    """Over 20 secrets, the self-study multiple-choice letters copied into the exam are right 15-35 % of the time."""
    per_secret = []
    for secret in SECRETS:
        right = total = 0
        for quiz_id in QUIZZES:
            v = exam.build_variant(_source(quiz_id), quiz_id, secret, 1)
            for old, new in v.answers.values():
                total += 1
                right += old == new          # the copied letter is right only where the option kept its letter
        per_secret.append(right / total)
    mean = statistics.mean(per_secret)
    with capsys.disabled():
        print(f"\ncopied self-study letters, share right per secret ({total} multiple-choice questions each): "
              + " ".join(f"{s:.0%}" for s in per_secret)
              + f"; min {min(per_secret):.0%}, max {max(per_secret):.0%}, mean {mean:.1%}")
    assert 0.15 <= mean <= 0.35
    assert max(per_secret) < 0.5


def test_option_order_is_a_uniform_shuffle():
    """Each option lands at each position about equally often (over 400 secrets, chi-square test, 9 dof)."""
    counts = [[0] * 4 for _ in range(4)]
    for i in range(400):
        order = exam.option_order("abcd", f"secret {i}", "00_setup_and_tour", "q01")
        for position, letter in enumerate(order):
            counts["abcd".index(letter)][position] += 1
    chi2 = sum((c - 100) ** 2 / 100 for row in counts for c in row)
    assert chi2 < 27.9, counts                    # p = 0.001 for 9 degrees of freedom


def test_shuffle_prompt_rejects_a_prompt_without_its_options():
    with pytest.raises(CourseError, match="expected one line"):
        exam.shuffle_prompt("### Q01 · x\n- **(a)** one\n- **(b)** two\n", "cab")


def test_check_says_no_feedback_for_a_quiz_without_key():
    lines = []
    quiz.check("01_number_formats_exam_3", "q01", "a", echo=lines.append)
    assert lines == ["q01: no instant feedback for quiz '01_number_formats_exam_3' (an exam variant ships no key)"]
    lines.clear()
    quiz.check(QUIZZES[0], "q01", "a", echo=lines.append)              # a self-study quiz still answers
    assert lines and ("✓" in lines[0] or "✗" in lines[0])


def test_secrets_come_from_a_file_never_from_argv(tmp_path, capsys):
    path = tmp_path / "secrets.txt"
    path.write_text("# exam of 2 December\nfirst exam secret\n\nsecond exam secret\n")
    assert givens.read_secrets(str(path)) == ["first exam secret", "second exam secret"]
    for text, message in [("short\n", "at least 8"), ("same secret!\nsame secret!\n", "repeats"), ("\n# none\n", "no secret")]:
        path.write_text(text)
        with pytest.raises(CourseError, match=message):
            givens.read_secrets(str(path))
    assert grading.main(["release", "--exam", "--root", str(ROOT)]) == 2          # no --secret-file
    assert "needs both --exam and --secret-file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        grading.main(["release", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--exam" in out and "--secret-file" in out and "--roster" in out and "--secret " not in out


def test_givens_draw_rules():
    values = {"a": [0.3, 0.1, 0.9, 0.4, 0.2], "M": [[1.0, 2.0], [3.0, 4.0]], "h": "00 00 2a 00", "b": 0x3A}
    draw = {"a": [0.1, 0.9, 0.1, "distinct"], "M": [-1.0, 1.0, 0.5], "h": {"le": [2, 2], "value": [300, 400, 1]},
            "b": [0x34, 0x3F, 1]}
    for i in range(30):
        got = givens.draw_givens(values, draw, f"secret {i}!", "99_x")
        assert len(set(got["a"])) == 5 and all(0.1 <= x <= 0.9 for x in got["a"])
        assert all(x in (-1.0, -0.5, 0.0, 0.5, 1.0) for row in got["M"] for x in row) and len(got["M"]) == 2
        assert got["h"].startswith("00 00 ") and 300 <= int.from_bytes(bytes.fromhex(got["h"])[2:4], "little") <= 400
        assert 0x34 <= got["b"] <= 0x3F
    assert givens.rewrite_givens("b = 0x3A  # a byte\nn = 2\n", {"b": 60, "n": 3}) == "b = 0x3C  # a byte\nn = 3\n"
    with pytest.raises(CourseError, match="distinct"):
        givens.draw_givens({"a": [1, 2, 3]}, {"a": [1, 2, 1, "distinct"]}, "a secret!", "99_x")


# --------------------------------------------------------------------------- through nbgrader
EXAM_QUIZZES = ["01_number_formats", "05_obd_obs"]


def _reassigning(released, source_nb, quiz_id, variant):
    """The variant's solutions, but every number answer cell first sets the givens back to the
    self-study values (so the solution code computes the self-study answer)."""
    nb = grading.solution_submission(released, variant)
    restore = givens.givens_cell(source_nb).source
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if gid.endswith("_answer") and "answer_" in cell.source and "def " not in cell.source:
            cell.source = restore + cell.source
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("quiz_id", EXAM_QUIZZES)
def test_exam_release_and_autograde(quiz_id, tmp_path, capsys):
    root = tmp_path / "quizzes"
    (root / "source").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "source" / quiz_id, root / "source" / quiz_id)
    secret_file, roster = tmp_path / "secrets", tmp_path / "roster"
    secret_file.write_text(f"{SECRETS[5]}\n{SECRETS[6]}\n")
    roster.write_text("ada\nbob\ncyd\n")
    assert grading.main(["release", "--root", str(root), "--quiz", quiz_id, "--exam", "--secret-file",
                         str(secret_file), "--roster", str(roster)]) == 0                 # the command line
    names = [f"{quiz_id}_exam_1", f"{quiz_id}_exam_2"]
    released = [root / "release" / name / f"{name}.ipynb" for name in names]
    assert all(p.is_file() for p in released) and SECRETS[5] not in capsys.readouterr().out
    assert grading.quiz_ids(root) == [quiz_id] and grading.quiz_ids(root, exams=True) == [quiz_id] + names
    rows = list(csv.DictReader((root / "exam_variants.csv").open(encoding="utf-8")))
    assert [(r["student"], r["assignment"]) for r in rows] == [("ada", names[0]), ("bob", names[1]), ("cyd", names[0])]
    (tmp_path / "other").write_text("ada\ncyd\nbob\n")
    with pytest.raises(CourseError, match="exists with other content"):
        grading.release_exam(secret_file, quiz_id, root, tmp_path / "other")

    source_nb = nbformat.read(str(root / "source" / quiz_id / f"{quiz_id}.ipynb"), as_version=4)
    self_study = _run(source_nb, quiz_id)
    expected_reassign = {}
    for name, path in zip(names, released):
        text = path.read_text(encoding="utf-8")
        rel = nbformat.reads(text, as_version=4)
        assert not re.search(r"\b[0-9a-f]{24}\b", text), "something like an answer hash in the release"
        assert "hashes" not in text and "salt" not in text and "_givens" not in text and "BEGIN" not in text
        assert "check(" not in text and not any("quiz" in c.metadata for c in rel.cells)
        assert not (quiz.keys_dir() / f"{name}.json").exists()
        variant = nbformat.read(str(root / "source" / name / f"{name}.ipynb"), as_version=4)
        for student, nb in [("solution", grading.solution_submission(rel, variant)),
                            ("reassign", _reassigning(rel, source_nb, quiz_id, variant))]:
            folder = root / "submitted" / student / name
            folder.mkdir(parents=True)
            nbformat.write(nb, str(folder / f"{name}.ipynb"))
        exam_answers = _run(variant, name)
        lost = [q.qid for q in parse_quiz(variant, name)
                if q.kind == "number" and abs(exam_answers[q.qid] - self_study[q.qid]) > q.meta["tol"]]
        expected_reassign[name] = lost

    report = grading.autograde("all", root, timeout=10, total_timeout=60)
    assert quiz_id not in report or not report[quiz_id]["graded"]
    for name in names:
        per = grading.question_scores(name, root)
        assert report[name]["failed"] == [], report[name]["log"][-2000:]
        assert sum(per["solution"].values()) == 15, per["solution"]
        zero = sorted(g.removesuffix("_test") for g, s in per["reassign"].items() if s == 0)
        assert expected_reassign[name] and zero == expected_reassign[name]
        with capsys.disabled():
            print(f"\n{name}: solution {sum(per['solution'].values()):g}/15; reassigning the self-study givens "
                  f"scores {sum(per['reassign'].values()):g}/15 (0 on {', '.join(zero)})")
    # grades and item statistics treat each variant as an assignment, with its own right letters
    assert grading.main(["grades", "--root", str(root), "--out", str(root / "grades.csv")]) == 0
    stats = list(csv.DictReader((root / "item_stats.csv").open(encoding="utf-8")))
    assert {r["quiz"] for r in stats} == set(names)
    for name in names:
        variant = nbformat.read(str(root / "source" / name / f"{name}.ipynb"), as_version=4)
        letters = {q.qid: re.search(r'"([a-z])"', q.hidden_test).group(1)
                   for q in parse_quiz(variant, name) if q.kind == "choice"}
        assert {r["question"]: r["correct_option"] for r in stats if r["quiz"] == name and r["correct_option"]} == letters
    # the same secret file releases the same variants again, even with submissions present
    before = [p.read_text(encoding="utf-8") for p in released]
    again = grading.release_exam(secret_file, quiz_id, root)[quiz_id]
    assert again == released and [p.read_text(encoding="utf-8") for p in again] == before
    secret_file.write_text(f"{SECRETS[7]}\n")
    with pytest.raises(CourseError, match="already has"):
        grading.release_exam(secret_file, quiz_id, root)


# Number questions whose answer may legitimately be 0 in some variant (a rank correlation of 0).
MAY_BE_ZERO = {("04_taylor_sensitivity", "q06")}


@pytest.mark.parametrize("quiz_id", QUIZZES)
def test_draw_ranges_keep_the_computations_sensible(quiz_id):
    """Over 40 secrets: every number answer is finite, at least 2 tolerances away from 0 (so the tolerance
    still tells right from wrong), and the answers vary (the exam changes them)."""
    import math

    nb = _source(quiz_id)
    questions = [q for q in parse_quiz(nb, quiz_id) if q.kind == "number"]
    setup = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    seen = {q.qid: set() for q in questions}
    for i in range(40):
        v = exam.build_variant(nb, quiz_id, f"sensible secret {i}", 1)
        namespace = {"__name__": "sensible"}
        exec(compile(audit._strip_markers(setup.source), "<setup>", "exec"), namespace)
        exec(compile(givens.givens_cell(v.notebook).source, "<givens>", "exec"), namespace)
        for q in questions:
            exec(compile(audit._strip_markers(nb.cells[q.answer_cell].source), f"<{q.qid}>", "exec"), namespace)
            value, tol = float(namespace[q.variable]), q.meta["tol"]
            assert math.isfinite(value), (q.qid, v.givens)
            assert abs(value) >= 2 * tol or (quiz_id, q.qid) in MAY_BE_ZERO, (q.qid, value, v.givens)
            seen[q.qid].add(round(value / tol))
    assert all(len(s) >= 3 for s in seen.values()), {k: len(s) for k, s in seen.items()}
