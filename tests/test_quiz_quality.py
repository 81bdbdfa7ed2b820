"""The quiz checks of courseutils.grading.audit (issue 17): option balance, repeats, leaks, answer types.

Each check runs twice:

- on ``tests/fixtures/quizzes_issue17/``, a frozen copy of the quizzes as issue 17 found
  them (commit bde916c), where it must report exactly the known defects, so a check that
  stopped finding them fails here;
- on the current quizzes (rewritten under issue 17), where everything must pass.

The quizzes are executed in this process (no kernel): a few seconds per course copy.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from courseutils.grading import audit, instructor as grading, quiz
from courseutils.grading.audit import Item

ROOT = grading.course_root()
QUIZZES = grading.quiz_ids(ROOT)
ISSUE17 = Path(__file__).parent / "fixtures" / "quizzes_issue17"


@pytest.fixture(scope="module")
def today():
    """The quizzes as issue 17 found them."""
    return audit.load_items(ISSUE17)


@pytest.fixture(scope="module")
def current():
    return audit.load_items(ROOT)


def _items(records):
    return [it for rec in records for it in rec.items]


# --------------------------------------------------------------------------- option balance
def test_balance_catches_the_longest_option_rule(today):
    bal = audit.option_balance(_items(today))
    assert bal.n == 32
    assert len(bal.longest_correct) == 31 and bal.longest_share > audit.MAX_LONGEST_SHARE
    assert bal.letters == {"a": 8, "b": 7, "c": 10, "d": 7}
    assert not bal.ok and len(bal.problems) == 1 and "longest in 31 of 32" in bal.problems[0]


def _mc(i, answer, longest):
    options = {letter: "an option of some length" for letter in "abcd"}
    options[longest] += ", and longer"
    return Item("00_x", f"q{i:02d}", "choice", "t", "prompt", options, answer)


def _other(letter):
    return "abcd"["abcd".index(letter) - 1]


def test_balance_on_made_up_questions():
    # right letters a,b,c,d,a,b,c,d,a,b (30/30/20/20 %); the right option is the longest in 4 of 10 (40 %)
    items = [_mc(i, a, a if i < 4 else _other(a)) for i, a in enumerate("abcdabcdab")]
    bal = audit.option_balance(items)
    assert bal.letters == {"a": 3, "b": 3, "c": 2, "d": 2} and len(bal.longest_correct) == 4 and bal.ok
    # one more longest-is-right (50 %), and letters a 70 %, b, c, d 10 % each: five problems
    skewed = [_mc(i, a, a if i < 5 else _other(a)) for i, a in enumerate("aaaaaaabcd")]
    bad = audit.option_balance(skewed)
    assert len(bad.problems) == 5 and "longest in 5 of 10" in bad.problems[0]
    assert [p[:3] for p in bad.problems[1:]] == ["(a)", "(b)", "(c)", "(d)"]
    ties = [_mc(i, a, a) for i, a in enumerate("abcd")]
    ties[0].options["b"] = ties[0].options["a"]          # a tie for the longest counts as the longest
    assert len(audit.option_balance(ties).longest_correct) == 4


def test_current_quizzes_are_balanced(current):
    bal = audit.option_balance(_items(current))
    assert bal.ok, bal.problems


# --------------------------------------------------------------------------- repeats
KNOWN_REPEATS = {("00_setup_and_tour Q03", "02_gguf_and_quant_types Q01"),
                 ("00_setup_and_tour Q05", "02_gguf_and_quant_types Q02"),
                 ("00_setup_and_tour Q06", "02_gguf_and_quant_types Q03")}


def test_repeats_catches_quiz_02_repeating_quiz_00(today):
    found = audit.repeats(_items(today))
    assert {(r.a, r.b) for r in found} == KNOWN_REPEATS
    # text similarity alone would miss every one of them: their prompts are alike, but below the threshold
    assert all(audit.SHARED_TEXT_RATIO <= r.text_ratio < audit.TEXT_RATIO for r in found)
    assert all(r.reason != "alike prompts" for r in found)


def test_repeats_needs_shared_text_and_another_quiz():
    a = Item("00_a", "q01", "number", "Bits of X", "How many bits per weight does X take?", answer=4.5, tol=0.01)
    b = Item("02_b", "q03", "number", "Bits of Y", "How many bits per weight does Y take?", answer=4.5, tol=0.01)
    c = Item("03_c", "q07", "number", "Zebra count", "Count the zebras crossing the river at dawn.", answer=4.5, tol=0.01)
    d = Item("00_a", "q02", "number", "Bits of Y", "How many bits per weight does Y take?", answer=4.5, tol=0.01)
    pairs = {(r.a, r.b) for r in audit.repeats([a, b, c, d])}
    assert ("00_a Q01", "02_b Q03") in pairs and ("02_b Q03", "00_a Q02") in pairs
    assert not any("03_c" in x or "03_c" in y for x, y in pairs)          # equal answer, nothing else shared
    assert ("00_a Q01", "00_a Q02") not in pairs                          # same quiz


def test_current_quizzes_have_no_repeats(current):
    assert not audit.repeats(_items(current))


# --------------------------------------------------------------------------- leaks
KNOWN_LEAKS = {  # (shown in, answer of, as written): the four defects issue 17 lists ...
    ("05_obd_obs Q05 test", "05_obd_obs Q03", "1 / 3"),
    ("05_obd_obs Q05 test", "05_obd_obs Q04", "-2 / 3"),
    ("05_obd_obs Q09 test", "05_obd_obs Q03", "1 / 3"),
    ("00_setup_and_tour Q08 prompt", "00_setup_and_tour Q06", "4.5"),
    ("02_gguf_and_quant_types Q08 prompt", "02_gguf_and_quant_types Q03", "4.5"),
}
FURTHER_LEAKS = {  # ... and the others the check found in the same quizzes
    ("00_setup_and_tour Q09 test", "00_setup_and_tour Q06", "4.5"),       # average_bpw example uses Q4_K's 4.5
    ("00_setup_and_tour Q15 prompt", "00_setup_and_tour Q06", "4.5"),     # "Q4_0 (4.5 bpw)"
    ("01_number_formats Q05 prompt", "01_number_formats Q04", "448"),     # option (a): "57344 against 448"
    ("02_gguf_and_quant_types Q09 prompt", "02_gguf_and_quant_types Q08", "4.84"),
    ("05_obd_obs Q15 prompt", "05_obd_obs Q08", "1.5"),
}


def test_leaks_catches_the_known_leaks(today):
    found = {(lk.shown_in, lk.answer_of, lk.text) for lk in audit.leaks(today)}
    assert KNOWN_LEAKS <= found
    assert found == KNOWN_LEAKS | FURTHER_LEAKS


def test_numbers_a_reader_sees():
    assert ("-2 / 3", -2 / 3) in audit.numbers_in("assert np.allclose(_w, [0.0, -2 / 3])", True)
    assert ("2.0 ** -7", 2.0 ** -7) in audit.numbers_in("x = 2.0 ** -7", True)
    md = dict(audit.numbers_in("Q4_K alone is 4.5 bpw, a ratio of 1/3 and −2", False))
    assert md["4.5"] == 4.5 and math.isclose(md["1/3"], 1 / 3) and md["−2"] == -2
    assert audit.one_significant_digit(0.5) and audit.one_significant_digit(400) and audit.one_significant_digit(-2)
    assert not audit.one_significant_digit(4.5) and not audit.one_significant_digit(1 / 3)


def test_current_quizzes_have_no_leaks(current):
    assert not audit.leaks(current)


# --------------------------------------------------------------------------- answer types
TYPE_DEFECTS = {("00_setup_and_tour", "q04"), ("00_setup_and_tour", "q09"), ("00_setup_and_tour", "q13"),
                ("01_number_formats", "q07"), ("03_measuring_quality", "q03"), ("03_measuring_quality", "q06")}


def test_answer_types_catches_strict_hidden_tests(today):
    """isinstance(..., int/float) in hidden tests: a numpy or torch result scores 0."""
    failures = audit.answer_types(today)
    assert {(f.quiz, f.qid) for f in failures} == TYPE_DEFECTS
    assert {f.form for f in failures if f.qid in ("q04", "q13") and f.quiz == "00_setup_and_tour"} >= {
        "numpy scalars", "0-d arrays"}
    assert all(f.where == "graded test" for f in failures)


def _old_as_real(value):
    """The checker's rule before issue 17: numbers.Real only (np.array(2.0), torch.tensor(2.0) rejected)."""
    import numbers
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) else None


def test_answer_types_catches_the_strict_checker(monkeypatch):
    """With the old expect_number/judge rule, number answers given as 0-d arrays or tensors fail both ways."""
    monkeypatch.setattr(quiz, "as_real", _old_as_real)
    failures = audit.load_quiz("00_setup_and_tour", ISSUE17).type_failures
    numbers = {(f.qid, f.form, f.where) for f in failures if f.kind == "number"}
    for qid in ("q02", "q05", "q06", "q10"):
        assert (qid, "np.array (0-d)", "graded test") in numbers and (qid, "np.array (0-d)", "instant check") in numbers
        if audit._torch() is not None:
            assert (qid, "torch.tensor", "graded test") in numbers and (qid, "torch.tensor", "instant check") in numbers
        assert not any(q == qid and form in ("float", "np.float64") for q, form, _ in numbers)


def test_current_quizzes_accept_python_numpy_and_torch_numbers(current):
    assert not audit.answer_types(current), "\n".join(map(str, audit.answer_types(current)))


@pytest.mark.parametrize("q", QUIZZES)
def test_shipped_keys_accept_every_number_form(q, current):
    """The instant check with the shipped key: every computation's solution as np.float64, 0-d array, torch scalar."""
    record = next(r for r in current if r.quiz == q)
    torch = audit._torch()
    for it in record.items:
        if it.kind != "number":
            continue
        forms = [np.float64(it.answer), np.array(it.answer), float(it.answer)]
        if torch is not None:
            forms += [torch.tensor(it.answer, dtype=torch.float64), torch.tensor(it.answer, dtype=torch.float32)]
        if float(it.answer).is_integer():
            forms += [np.int64(it.answer), int(it.answer)]
        for form in forms:
            assert quiz.is_correct(q, it.qid, form), f"{q} {it.qid}: check() rejects {form!r}"
            quiz.expect_number(form, it.qid)


# --------------------------------------------------------------------------- command line
def test_audit_command(capsys):
    with pytest.raises(SystemExit) as exc:
        grading.main(["audit", "--help"])
    assert exc.value.code == 0 and "--no-types" in capsys.readouterr().out
    status = grading.main(["audit", "--root", str(ISSUE17), "--quiz", "05_obd_obs", "--no-types"])
    out = capsys.readouterr().out
    assert status == 1
    assert "Option balance (" in out and "the answer of 05_obd_obs Q03" in out and "some checks fail" in out
    assert "Answer types" not in out
