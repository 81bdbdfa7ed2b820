"""The size-budget widget of lesson 08 (ipywidgets 7.7 and 8).

- :func:`budget_report`: for one budget, the exact and the greedy allocation and the largest
  uniform type that fits (pure computation, used by the widget and its tests).
- :func:`type_grid`: a ``{"blk.B.KIND.weight": type}`` map as a blocks x kinds table.
- :func:`allocation_explorer`: a slider on the budget; every move re-solves the allocation
  (the exact solver takes well under a second on tinycode) and redraws the type map.

Only widgets that exist in both ipywidgets 7.7 and 8 are used (``FloatSlider``, ``HTML``,
``VBox``) and ``observe``.
"""
from __future__ import annotations

import html
import re
from typing import Mapping, Sequence

from ..algorithms.allocation import (Allocation, Candidate, allocate_exact, allocate_greedy, check_candidates,
                                     uniform_allocation)
from ..core.errors import CourseError

__all__ = ["budget_report", "type_grid", "allocation_explorer"]

_NAME = re.compile(r"^blk\.(\d+)\.(.+)\.weight$")
# one colour per type, from fewer bits (warm) to more (cool)
_COLOURS = {"Q2_K": "#f4a582", "Q3_K": "#fddbc7", "Q4_K": "#f7f7f7", "Q5_K": "#d1e5f0", "Q6_K": "#92c5de",
            "Q8_0": "#4393c3"}


def budget_report(candidates: Mapping[str, Sequence[Candidate]], budget: int) -> dict:
    """The exact and greedy allocations at ``budget`` bytes, and the largest uniform type within it.

    Returns ``{"exact": Allocation, "greedy": Allocation, "uniform": Allocation or None}``;
    ``uniform`` is the uniform allocation (every tensor one type) of the largest size that
    is at most ``budget``, None when none fits.
    """
    cands = check_candidates(candidates)
    types = [c.qtype for c in next(iter(cands.values()))]
    uniforms = [uniform_allocation(cands, q) for q in types
                if all(any(c.qtype == q for c in opts) for opts in cands.values())]
    fitting = [u for u in uniforms if u.nbytes <= budget]
    return {"exact": allocate_exact(cands, budget), "greedy": allocate_greedy(cands, budget),
            "uniform": max(fitting, key=lambda u: u.nbytes) if fitting else None}


def type_grid(types: Mapping[str, str]) -> tuple[list[int], list[str], list[list[str]]]:
    """``{"blk.B.KIND.weight": type}`` as ``(blocks, kinds, grid)`` with ``grid[b][k]`` a type or "".

    Kinds keep their first-seen order; names that are not ``blk.B.KIND.weight`` raise CourseError.
    """
    cells = {}
    for name, q in types.items():
        m = _NAME.match(name)
        if not m:
            raise CourseError(f"tensor name {name!r} is not of the form blk.<block>.<kind>.weight")
        cells[int(m.group(1)), m.group(2)] = q
    blocks = sorted({b for b, _ in cells})
    kinds = list(dict.fromkeys(k for _, k in cells))
    return blocks, kinds, [[cells.get((b, k), "") for k in kinds] for b in blocks]


def _table(alloc: Allocation) -> str:
    blocks, kinds, grid = type_grid(alloc.types)
    head = "".join(f"<th style='padding:2px 6px'>{html.escape(k)}</th>" for k in kinds)
    rows = []
    for b, row in zip(blocks, grid):
        tds = "".join(f"<td style='padding:2px 6px;background:{_COLOURS.get(q, '#ffffff')}'>{html.escape(q)}</td>"
                      for q in row)
        rows.append(f"<tr><th style='padding:2px 6px'>blk.{b}</th>{tds}</tr>")
    return f"<table style='border-collapse:collapse;font-size:12px'><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _summary(report: dict, budget: int) -> str:
    MiB = 2 ** 20
    ex, gr, un = report["exact"], report["greedy"], report["uniform"]
    lines = [f"budget {budget / MiB:.3f} MiB: exact allocation {ex.nbytes / MiB:.3f} MiB, predicted cost "
             f"<b>{ex.cost:.4g}</b>; greedy {gr.nbytes / MiB:.3f} MiB, cost {gr.cost:.4g}"
             + (" (the same)" if gr.types == ex.types else
                f" ({sum(gr.types[t] != ex.types[t] for t in ex.types)} tensors differ)")]
    if un is None:
        lines.append("no uniform type fits this budget")
    else:
        lines.append(f"largest uniform type that fits: {html.escape(un.method)} ({un.nbytes / MiB:.3f} MiB), "
                     f"cost {un.cost:.4g}: the exact mix predicts {ex.cost / un.cost:.2f}x of it")
    return "<br>".join(lines)


def allocation_explorer(candidates: Mapping[str, Sequence[Candidate]], start: int | None = None):
    """A slider on the size budget (MiB) over ``candidates``; shows the exact allocation's type map.

    Args:
        candidates: ``{GGUF tensor name: [Candidate, ...]}`` (from
            :func:`courseutils.algorithms.allocation.tensor_candidates`).
        start: the first budget in bytes (default: halfway between the smallest and largest sizes).
    """
    import ipywidgets as widgets

    cands = check_candidates(candidates)
    MiB = 2 ** 20
    lo = sum(opts[0].nbytes for opts in cands.values())
    hi = sum(opts[-1].nbytes for opts in cands.values())
    start = (lo + hi) // 2 if start is None else int(start)
    if not lo <= start <= hi:
        raise CourseError(f"start={start} bytes must lie between {lo} and {hi} (the smallest and largest sizes)")
    step = max((hi - lo) / MiB / 200, 1e-4)
    slider = widgets.FloatSlider(value=start / MiB, min=lo / MiB, max=hi / MiB, step=step, readout_format=".3f",
                                 description="budget (MiB)", continuous_update=False,
                                 style={"description_width": "100px"}, layout=widgets.Layout(width="600px"))
    out = widgets.HTML()

    def update(_=None):
        budget = min(max(int(slider.value * MiB), lo), hi)
        report = budget_report(cands, budget)
        out.value = _summary(report, budget) + "<br>" + _table(report["exact"])

    slider.observe(update, names="value")
    update()
    return widgets.VBox([slider, out])
