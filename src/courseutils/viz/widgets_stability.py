"""The calibration-size widget of lesson 09 (ipywidgets 7.7 and 8).

- :func:`stability_report`: for one layer and one calibration size ``n``, the rank agreement of
  every disjoint ``n``-sequence estimate with the reference
  (:func:`courseutils.algorithms.sensitivity.subset_agreement`), and which of the reference's
  top-``k`` channels the first estimate also puts in its top ``k`` (pure computation, used by the
  widget and its tests).
- :func:`stability_explorer`: a layer menu and a slider on ``n``; every change redraws the report.

Only widgets that exist in both ipywidgets 7.7 and 8 are used (``Dropdown``, ``SelectionSlider``,
``HTML``, ``VBox``) and ``observe``.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np

from ..algorithms.sensitivity import subset_agreement
from ..core.errors import CourseError

__all__ = ["stability_report", "stability_explorer"]


def _check(per_seq: np.ndarray, n_pool: int) -> np.ndarray:
    X = np.asarray(per_seq, dtype=np.float64)
    if X.ndim != 2:
        raise CourseError(f"per_seq must be (sequences, channels); got shape {X.shape}")
    if isinstance(n_pool, bool) or not isinstance(n_pool, (int, np.integer)) or not 1 <= n_pool < X.shape[0]:
        raise CourseError(f"n_pool={n_pool!r}; allowed: an integer from 1 to {X.shape[0] - 1} (the rows after "
                          "the pool are the reference)")
    return X


def stability_report(per_seq, n_pool: int, n: int, k: int = 10) -> dict:
    """How an ``n``-sequence estimate of one layer agrees with the reference.

    Args:
        per_seq: ``(n_pool + n_ref, d)`` per-sequence estimates (e.g. ``SequenceSensitivity.alpha``);
            rows ``0..n_pool-1`` are the pool, the rest the reference (its mean).
        n_pool: rows in the pool.
        n: sequences per estimate.
        k: how many top channels to compare.

    Returns:
        ``{"rhos": (n_pool // n,) Spearman per disjoint estimate, "rho": their mean,
        "top_ref": the reference's top-k channel indices (largest first),
        "shared": [bool per top_ref channel: also in the first estimate's top k]}``.
    """
    X = _check(per_seq, n_pool)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= X.shape[1]:
        raise CourseError(f"k={k!r}; allowed: an integer from 1 to {X.shape[1]} (the channels)")
    ref = X[n_pool:].mean(axis=0)
    rhos = subset_agreement(X[:n_pool], ref, n)
    top_ref = [int(i) for i in np.argsort(-ref, kind="stable")[:k]]
    top_est = set(np.argsort(-X[:n].mean(axis=0), kind="stable")[:k].tolist())
    return {"rhos": rhos, "rho": float(rhos.mean()), "top_ref": top_ref, "shared": [i in top_est for i in top_ref]}


def _html(layer: str, n: int, n_ref: int, r: dict) -> str:
    rhos = " ".join(f"{v:.2f}" for v in r["rhos"])
    marks = " ".join(f"<span style='padding:1px 4px;background:{'#b8e186' if s else '#f1b6da'}'>{i}</span>"
                     for i, s in zip(r["top_ref"], r["shared"]))
    return (f"<b>{html.escape(layer)}</b>, estimates from <b>{n}</b> sequence{'s' if n > 1 else ''}: Spearman with the "
            f"{n_ref}-sequence reference, per disjoint estimate: {rhos} (mean <b>{r['rho']:.3f}</b>)<br>"
            f"the reference's top {len(r['top_ref'])} channels; green: also in the top {len(r['top_ref'])} of the "
            f"first estimate ({sum(r['shared'])} of {len(r['top_ref'])}):<br>{marks}")


def stability_explorer(per_seq: Mapping[str, np.ndarray], n_pool: int, sizes: Sequence[int] = (1, 2, 4, 8, 16),
                       k: int = 10, layer: str | None = None):
    """A layer menu and a slider on the calibration size; shows :func:`stability_report`.

    Args:
        per_seq: ``{layer name: (n_pool + n_ref, d) per-sequence estimates}``.
        n_pool: rows of each array in the pool; the rest are the reference.
        sizes: the calibration sizes the slider offers (each from 1 to ``n_pool``).
        layer: the layer shown first (default: the first one).
    """
    import ipywidgets as widgets

    if not per_seq:
        raise CourseError("per_seq is empty: give {layer: (sequences, channels) array}")
    arrays = {name: _check(a, n_pool) for name, a in per_seq.items()}
    bad = [s for s in sizes if not 1 <= s <= n_pool]
    if not sizes or bad:
        raise CourseError(f"sizes={list(sizes)!r}; each must be from 1 to n_pool={n_pool}")
    first = layer if layer is not None else next(iter(arrays))
    if first not in arrays:
        raise CourseError(f"layer={first!r} is not among the {len(arrays)} layers given")
    menu = widgets.Dropdown(options=list(arrays), value=first, description="layer",
                            layout=widgets.Layout(width="420px"))
    slider = widgets.SelectionSlider(options=[int(s) for s in sizes], value=int(sizes[0]), description="sequences",
                                     continuous_update=False, layout=widgets.Layout(width="420px"))
    out = widgets.HTML()

    def update(_=None):
        X = arrays[menu.value]
        out.value = _html(menu.value, slider.value, X.shape[0] - n_pool,
                          stability_report(X, n_pool, slider.value, min(k, X.shape[1])))

    menu.observe(update, names="value")
    slider.observe(update, names="value")
    update()
    return widgets.VBox([menu, slider, out])
