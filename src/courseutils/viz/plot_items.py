"""Plot for instructors: quiz item statistics (difficulty against discrimination).

Thin by design: takes the numbers :mod:`courseutils.grading.item_stats` computed and
returns a ``matplotlib`` figure built without pyplot (so saving it needs no display and
changes no global state).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import CourseError

__all__ = ["item_map"]


def item_map(labels: Sequence[str], difficulty: Sequence[float], discrimination: Sequence[float],
             easy: float = 0.9, hard: float = 0.2, title: str = "quiz items"):
    """Scatter of each item's difficulty (share correct) against its discrimination.

    Shaded bands mark the flags: too hard (difficulty < ``hard``), too easy (> ``easy``)
    and negative discrimination (< 0). Items whose discrimination is undefined (everyone
    scored the same) sit on the zero line as hollow markers.

    Args:
        labels: item names, e.g. ``["00 Q01", ...]``, ``(n,)``.
        difficulty: share of students who got the item right, ``(n,)`` in [0, 1].
        discrimination: point-biserial correlation with the rest-score, ``(n,)``; NaN allowed.
    """
    from matplotlib.figure import Figure

    p = np.asarray(difficulty, dtype=float)
    r = np.asarray(discrimination, dtype=float)
    if not (len(labels) == len(p) == len(r)) or len(p) == 0:
        raise CourseError(f"labels, difficulty, discrimination must be non-empty and of one length; "
                          f"got {len(labels)}, {len(p)}, {len(r)}")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.axvspan(0, hard, color="tab:red", alpha=0.08, label=f"too hard (< {hard:g})")
    ax.axvspan(easy, 1, color="tab:orange", alpha=0.08, label=f"too easy (> {easy:g})")
    ax.axhspan(-1, 0, color="tab:purple", alpha=0.06, label="negative discrimination")
    ax.axhline(0, color="0.5", lw=0.8)
    defined = np.isfinite(r)
    ax.scatter(p[defined], r[defined], color="tab:blue", zorder=3)
    ax.scatter(p[~defined], np.zeros((~defined).sum()), facecolors="none", edgecolors="tab:blue", zorder=3,
               label="discrimination undefined")
    for label, x, y in zip(labels, p, np.where(defined, r, 0.0)):
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_xlabel("difficulty (share correct)")
    ax.set_ylabel("discrimination (point-biserial with rest-score)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
