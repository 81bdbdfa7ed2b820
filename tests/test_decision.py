"""courseutils.scoring.decision: scorecard rows with intervals, the choice and its computed reasons."""
from __future__ import annotations

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.numerics.bootstrap import mean_ci, ppl_diff_ci
from courseutils.scoring.decision import choose, format_rows, variant_row
from courseutils.scoring.scorecard import Rubric, smallest_passing
from courseutils.scoring.torch_eval import TokenScores

RUBRIC = Rubric(max_ppl_increase=0.05, max_kld=0.05, min_top1=0.85)
N_CHUNKS, N_TOK = 12, 64


def scores(kld: float, nll_shift: float = 0.0, top1: float = 0.95, spread: float = 0.2, seed: int = 0) -> TokenScores:
    """Synthetic per-token scores: base NLL ~ 3 nats, the variant's shifted by ``nll_shift``,
    KLD around ``kld`` (relative spread ``spread`` between chunks), top-1 agreement ``top1``."""
    rng = np.random.default_rng(seed)
    base = 3.0 + 0.5 * rng.standard_normal((N_CHUNKS, N_TOK))
    chunk_factor = 1 + spread * rng.standard_normal((N_CHUNKS, 1))
    k = np.abs(kld * chunk_factor * rng.exponential(1.0, (N_CHUNKS, N_TOK)))
    same = rng.random((N_CHUNKS, N_TOK)) < top1
    return TokenScores(nll=base + nll_shift + 0.01 * rng.standard_normal((N_CHUNKS, N_TOK)), base_nll=base,
                       kld=k, same_top=same)


def rows_for(spec: dict, rubric: Rubric = RUBRIC, kind: str = "gguf") -> list[dict]:
    return [variant_row(label, s, size, 1000, kind, rubric, n_boot=400) for label, (size, s) in spec.items()]


def test_variant_row_matches_the_bootstrap_and_the_scorecard_rule():
    s = scores(0.02, nll_shift=0.01)
    row = variant_row("Q4_K_M", s, 4_000_000, 8_000_000, rubric=RUBRIC)
    dppl, kld = ppl_diff_ci(s.base_nll, s.nll), mean_ci(s.kld)
    assert row["ppl_change"] == pytest.approx(dppl.estimate) and row["ppl_change_ci"] == [dppl.low, dppl.high]
    assert row["kld"] == pytest.approx(s.kld.mean()) and row["kld_ci"] == [kld.low, kld.high]
    assert row["bpw"] == pytest.approx(4.0)
    assert row["ppl"] == pytest.approx(np.exp(s.nll.mean())) and row["base_ppl"] == pytest.approx(np.exp(s.base_nll.mean()))
    # the same decision as lesson 03's Rubric.check on the estimates; unmeasured tasks are left out
    assert set(row["criteria"]) == {"ppl", "kld", "top1"}
    assert row["criteria"] == RUBRIC.check(row, {"ppl": row["base_ppl"]})
    assert row["passes"] and row["clear"]


def test_clear_needs_the_whole_interval_inside_the_limit():
    s = scores(0.04, spread=0.6, seed=0)   # estimate just under the 0.05 limit, wide interval
    row = variant_row("Q3_K_M", s, 3e6, 10**7, rubric=RUBRIC, n_boot=400)
    assert row["kld"] < 0.05 < row["kld_ci"][1]
    assert row["passes"] and not row["clear"]
    d = choose([row], RUBRIC)
    assert "borderline by its interval" in d.reasons[0] and "could fail" in d.reasons[1]


def test_choose_takes_the_smallest_passing_file_and_says_why():
    rows = rows_for({"F16": (16e6, scores(1e-9, top1=1.0)), "Q8_0": (8e6, scores(0.001)),
                     "Q4_K_M": (4.5e6, scores(0.02)), "Q2_K": (2.6e6, scores(0.2, nll_shift=0.2, top1=0.7))})
    d = choose(rows, RUBRIC, reference="F16")
    assert d.label == "Q4_K_M"
    old = smallest_passing([dict(r, type=r["label"]) for r in rows], RUBRIC)   # lesson 03's rule agrees
    assert old == d.label
    text = d.text()
    assert text.startswith("- Choice: Q4_K_M") and "met clearly" in text
    assert "Smaller Q2_K" in text and "- clearly" in text
    assert "next larger passing variant, Q8_0" in text and "excludes 0" in text
    assert [r["label"] for r in d.rows] == ["Q2_K", "Q4_K_M", "Q8_0", "F16"]


def test_indistinguishable_when_the_paired_interval_covers_zero():
    a, b = scores(0.02, seed=1), scores(0.02, seed=1)
    b.kld = b.kld * (1 + 1e-4 * np.random.default_rng(5).standard_normal(b.kld.shape))
    rows = rows_for({"small": (3e6, a), "big": (4e6, b)})
    d = choose(rows, RUBRIC)
    assert d.label == "small"
    assert any("indistinguishable" in r and "nothing this text can measure" in r for r in d.reasons)


def test_same_size_tie_goes_to_the_clear_pass_then_lower_kld():
    borderline = scores(0.04, spread=0.6, seed=0)                  # passes, but not clearly
    rows = rows_for({"Q3_K_M": (3e6, borderline), "Q3_K_M+im": (3e6, scores(0.03, seed=3))})
    assert all(r["passes"] for r in rows)
    d = choose(rows, RUBRIC)
    assert d.label == "Q3_K_M+im"
    assert any(r.startswith("Q3_K_M has the same size and passes too (borderline)") for r in d.reasons)
    worse = rows_for({"Q3_K_M": (3e6, scores(0.3, top1=0.6)), "Q3_K_M+im": (3e6, scores(0.03, seed=3))})
    assert any(r.startswith("Same-size Q3_K_M") for r in choose(worse, RUBRIC).reasons)


def test_nothing_passes_is_reported_not_raised():
    rows = rows_for({"Q2_K": (2e6, scores(0.3, nll_shift=0.3, top1=0.6)), "Q3_K": (3e6, scores(0.1, top1=0.8))})
    d = choose(rows, RUBRIC)
    assert d.choice is None and d.label is None
    assert d.reasons[0].startswith("No gguf variant passes") and "closest is Q3_K" in d.reasons[0]


def test_only_the_reference_passes():
    rows = rows_for({"F16": (16e6, scores(1e-9, top1=1.0)), "Q2_K": (2e6, scores(0.3, nll_shift=0.3, top1=0.6))})
    d = choose(rows, RUBRIC, reference="F16")
    assert d.label == "F16" and d.reasons[0].startswith("Only the unquantized reference F16 passes")


def test_budget_conflict_names_the_largest_file_that_fits():
    rows = rows_for({"Q4_K_M": (4e6, scores(0.02)), "Q3_K_M": (3e6, scores(0.08, top1=0.8)),
                     "Q2_K": (2e6, scores(0.3, top1=0.6))})
    d = choose(rows, RUBRIC, budget_bytes=3.5e6)
    assert d.label == "Q4_K_M"                 # the budget is reported against, it does not change the rule
    conflict = [r for r in d.reasons if "budget" in r]
    assert len(conflict) == 1 and "conflict" in conflict[0] and "Q3_K_M" in conflict[0]
    fits = choose(rows, RUBRIC, budget_bytes=5e6)
    assert any("fits the budget" in r for r in fits.reasons)


def test_torch_rows_are_reported_but_not_chosen():
    rows = rows_for({"Q4_K_M": (4e6, scores(0.02))}) + rows_for({"GPTQ w4": (3e6, scores(0.01))}, kind="torch")
    d = choose(rows, RUBRIC)
    assert d.label == "Q4_K_M"
    assert any(r.startswith("Not eligible (torch") and "GPTQ w4" in r and "smaller than the choice" in r
               for r in d.reasons)
    assert choose(rows, RUBRIC, eligible=("gguf", "torch")).label == "GPTQ w4"


def test_format_rows_marks_the_choice():
    rows = rows_for({"Q4_K_M": (4e6, scores(0.02)), "Q2_K": (2e6, scores(0.3, top1=0.6))})
    table = format_rows(rows, choice="Q4_K_M")
    lines = table.splitlines()
    assert lines[2].startswith("Q2_K") and lines[3].startswith("Q4_K_M") and lines[3].endswith("<- choice")


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "onnx"}, "kind='onnx'"),
    ({"size_bytes": 0}, "size_bytes=0"),
    ({"n_weights": 0}, "n_weights=0"),
])
def test_variant_row_refuses_bad_input(kwargs, match):
    args = {"label": "x", "scores": scores(0.01), "size_bytes": 1e6, "n_weights": 100} | kwargs
    with pytest.raises(CourseError, match=match):
        variant_row(**args)


def test_variant_row_needs_a_reference():
    with pytest.raises(CourseError, match="no reference"):
        variant_row("x", TokenScores(nll=np.ones((2, 3))), 1e6, 100)


def test_choose_refuses_bad_input():
    rows = rows_for({"Q4_K_M": (4e6, scores(0.02))})
    with pytest.raises(CourseError, match="rows is empty"):
        choose([], RUBRIC)
    with pytest.raises(CourseError, match="eligible="):
        choose(rows, RUBRIC, eligible=("exl2",))
    with pytest.raises(CourseError, match="reference='F16'"):
        choose(rows, RUBRIC, reference="F16")
    with pytest.raises(CourseError, match="budget_bytes=-1"):
        choose(rows, RUBRIC, budget_bytes=-1)
    with pytest.raises(CourseError, match="no row of kind"):
        choose(rows, RUBRIC, eligible=("torch",))


def test_rubric_refuses_to_pass_an_unmeasured_task():
    row = {"label": "Q4_K_M", "ppl": 10.0, "kld": 0.01, "top1_agreement": 0.95, "format_following": None}
    assert set(Rubric().check(row, {"ppl": 10.0})) == {"ppl", "kld", "top1"}
    with pytest.raises(CourseError, match="min_format_following=0.5"):
        Rubric(min_format_following=0.5).check(row, {"ppl": 10.0})
