"""Plots of lesson 07 (AWQ): the alpha search of one group, and methods side by side with a published trend.

- :func:`alpha_curve`: eq. 3's measured module error against alpha (AWQ's grid search), the
  chosen alpha marked.
- :func:`methods_plot`: the perplexity change of several methods at several bit widths with
  their bootstrap intervals (left), beside a published table's changes for the same cells (right).

They draw arrays computed elsewhere (:mod:`courseutils.algorithms.awq`,
:mod:`courseutils.numerics.bootstrap`) and compute nothing.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import CourseError

__all__ = ["alpha_curve", "methods_plot"]


def alpha_curve(alphas: Sequence[float], losses: Sequence[float], best: float, title: str = ""):
    """Eq. 3's error at each alpha of the grid (AWQ's search), with the grid point ``best`` marked.

    Args:
        alphas, losses: the grid and the measured error at each point, ``(n,)``
            (``ScaleSearch.alphas`` and ``ScaleSearch.losses``).
        best: the chosen alpha; must be one of ``alphas``.
    Returns:
        The matplotlib figure. The marked point's y value is the loss at ``best``.
    """
    import matplotlib.pyplot as plt

    a, y = np.asarray(alphas, dtype=float), np.asarray(losses, dtype=float)
    if a.ndim != 1 or a.shape != y.shape or a.size == 0:
        raise CourseError(f"alphas and losses must be non-empty 1-D arrays of one length; got shapes {a.shape} and {y.shape}")
    hit = np.flatnonzero(np.isclose(a, float(best)))
    if hit.size == 0:
        raise CourseError(f"best={best!r} is not a point of the grid alphas={a.tolist()}")
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(a, y, "o-", color="tab:blue", label="measured error (eq. 3)")
    ax.plot(a[hit[0]], y[hit[0]], "*", color="tab:red", markersize=16, label=f"chosen alpha = {a[hit[0]]:g}")
    ax.plot(a[0], y[0], "s", color="tab:gray", markersize=8, label="alpha = 0 (round-to-nearest)")
    ax.set_xlabel("alpha  (s = mean|x|^alpha)")
    ax.set_ylabel("module output error")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def methods_plot(bit_labels: Sequence[str], methods: Sequence[str], live, live_ci, published,
                 live_name: str = "tinycode (live)", published_name: str = "published",
                 ylabel: str = "perplexity change vs FP16 (%)"):
    """Two panels with the same layout: live changes with intervals (left), a published table (right).

    Args:
        bit_labels: the settings, e.g. ``["W4 g128", "W3 g128"]``, ``(n_bits,)``.
        methods: e.g. ``["RTN", "GPTQ", "AWQ"]``, ``(n_methods,)``.
        live: ``(n_bits, n_methods)`` live estimates; live_ci: ``(n_bits, n_methods, 2)`` their (low, high).
        published: ``(n_bits, n_methods)`` the published values, same units.
    Returns:
        The matplotlib figure (axes: live, published).
    """
    import matplotlib.pyplot as plt

    live, ci, pub = (np.asarray(v, dtype=float) for v in (live, live_ci, published))
    shape = (len(bit_labels), len(methods))
    if live.shape != shape or pub.shape != shape or ci.shape != shape + (2,):
        raise CourseError(f"live and published must be (n_bits, n_methods) = {shape} and live_ci {shape + (2,)}; "
                          f"got {live.shape}, {pub.shape} and {ci.shape}")
    if ((ci[..., 0] > live) | (ci[..., 1] < live)).any():
        raise CourseError("every live estimate must lie inside its interval (low <= estimate <= high)")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(bit_labels))
    width = 0.8 / len(methods)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, m in enumerate(methods):
        xs = x - 0.4 + width * (k + 0.5)
        yerr = np.stack([live[:, k] - ci[:, k, 0], ci[:, k, 1] - live[:, k]])
        axes[0].errorbar(xs, live[:, k], yerr=yerr, fmt="o", capsize=4, color=colors[k % len(colors)], label=m)
        axes[1].plot(xs, pub[:, k], "s", color=colors[k % len(colors)], label=m)
    for ax, name in zip(axes, (live_name, published_name)):
        ax.set_xticks(x)
        ax.set_xticklabels(list(bit_labels))
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="gray", lw=1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    return fig
