"""The size-budget widget of lesson 08: its report is recomputed here by brute force over the
candidates, so a wiring or selection bug makes these tests fail."""
from __future__ import annotations

import itertools

import pytest

from courseutils.algorithms.allocation import Candidate
from courseutils.core.errors import CourseError
from courseutils.viz.widgets_allocation import allocation_explorer, budget_report, type_grid

SIZES = {"Q3_K": 110, "Q4_K": 144, "Q6_K": 210}
SENS = {"blk.0.attn_q.weight": 1.0, "blk.0.ffn_down.weight": 5.0, "blk.1.attn_q.weight": 0.3,
        "blk.1.ffn_down.weight": 2.0}
CANDS = {t: [Candidate(q, b, s * 4.0 ** -i) for i, (q, b) in enumerate(SIZES.items())] for t, s in SENS.items()}


def brute(budget):
    best = min((sum(c.cost for c in combo), combo) for combo in itertools.product(*CANDS.values())
               if sum(c.nbytes for c in combo) <= budget)
    return best[0]


@pytest.mark.parametrize("budget", [440, 500, 600, 700, 840])
def test_report_holds_the_optimum_and_the_largest_fitting_uniform_type(budget):
    r = budget_report(CANDS, budget)
    assert r["exact"].cost == pytest.approx(brute(budget))
    assert r["exact"].nbytes <= budget and r["greedy"].nbytes <= budget
    fitting = [q for q, b in SIZES.items() if 4 * b <= budget]
    assert r["uniform"].method == f"uniform {max(fitting, key=SIZES.get)}"
    assert set(r["uniform"].types.values()) == {max(fitting, key=SIZES.get)}


def test_type_grid_lays_out_blocks_and_kinds():
    blocks, kinds, grid = type_grid({"blk.1.ffn_down.weight": "Q6_K", "blk.0.attn_q.weight": "Q3_K",
                                     "blk.0.ffn_down.weight": "Q4_K"})
    assert blocks == [0, 1] and kinds == ["ffn_down", "attn_q"]
    assert grid == [["Q4_K", "Q3_K"], ["Q6_K", ""]]
    with pytest.raises(CourseError, match="token_embd.weight"):
        type_grid({"token_embd.weight": "Q4_K"})


def test_explorer_redraws_when_the_budget_moves():
    box = allocation_explorer(CANDS, start=440)
    slider, out = box.children
    assert "Q3_K" in out.value and "Q6_K" not in out.value.split("<table")[1]
    slider.value = slider.max
    table = out.value.split("<table")[1]
    assert table.count(">Q6_K<") == 4 and "Q3_K" not in table
    with pytest.raises(CourseError, match="start=10"):
        allocation_explorer(CANDS, start=10)
