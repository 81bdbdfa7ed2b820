"""Figures for lessons 04-05 and 09 (sensitivity, OBD/OBS, Hutchinson, error and stability curves). Thin: arrays in, a Figure out.

Nothing here computes a result or changes matplotlib's global settings.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .plotting import _figure

__all__ = ["proxy_scatter", "running_mean_plot", "taylor_plot", "layer_bars", "labelled_loglog", "interval_bars",
           "interval_curves"]


def _finish(fig, ax, xlabel: str, ylabel: str, title: str = "", legend_size: int | None = None):
    """Axis labels, a light grid, the legend (when ``legend_size`` is given) and the title; returns ``fig``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend_size is not None:
        ax.legend(fontsize=legend_size)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def proxy_scatter(scores: Mapping[str, Sequence[float]], truth: Sequence[float], truth_label: str,
                  notes: Mapping[str, str] | None = None, title: str = "", log: bool = True):
    """One panel per proxy: predicted score (x) against the measured truth (y) per channel group.

    ``notes`` adds a line under each panel's title (e.g. the rank correlations).
    Non-positive values are dropped from log axes (and counted in the panel title).
    """
    n = len(scores)
    fig = _figure((3.2 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False)[0]
    truth = np.asarray(truth, dtype=float)
    for ax, (name, x) in zip(axes, scores.items()):
        x = np.asarray(x, dtype=float)
        keep = (x > 0) & (truth > 0) if log else np.ones_like(x, dtype=bool)
        ax.scatter(x[keep], truth[keep], s=12, alpha=0.7)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        dropped = f" ({(~keep).sum()} <= 0 not shown)" if (~keep).any() else ""
        ax.set_title(name + dropped + (f"\n{notes[name]}" if notes and name in notes else ""), fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(truth_label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def running_mean_plot(estimates: Mapping[str, Sequence[float]], reference: Mapping[str, float] | None = None,
                      xlabel: str = "number of probes", ylabel: str = "estimate", title: str = ""):
    """Running mean ``cumsum(e) / k`` of per-probe estimates, one curve per name.

    ``reference`` draws a dashed horizontal line per name (e.g. an exact trace).
    """
    fig = _figure((6, 3.6))
    ax = fig.add_subplot()
    for i, (name, e) in enumerate(estimates.items()):
        e = np.asarray(e, dtype=float)
        k = np.arange(1, e.size + 1)
        ax.plot(k, np.cumsum(e) / k, color=f"C{i}", label=name)
        if reference and name in reference:
            ax.axhline(reference[name], color=f"C{i}", ls="--", lw=1)
    return _finish(fig, ax, xlabel, ylabel, title, legend_size=7)


def taylor_plot(eps: Sequence[float], measured: Sequence[float], predictions: Mapping[str, Sequence[float]],
                title: str = "", ylabel: str = "loss change"):
    """Measured loss change against step size, with the Taylor predictions; symlog y axis."""
    fig = _figure((6, 3.6))
    ax = fig.add_subplot()
    ax.plot(eps, measured, "ko", label="measured")
    for i, (name, y) in enumerate(predictions.items()):
        ax.plot(eps, y, color=f"C{i}", label=name)
    ax.set_xscale("log")
    values = np.concatenate([np.ravel(measured)] + [np.ravel(y) for y in predictions.values()])
    if np.all(values > 0):
        ax.set_yscale("log")
    else:  # sign changes: linear near zero, logarithmic beyond the smallest non-zero magnitude
        nonzero = np.abs(values[values != 0])
        ax.set_yscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 1e-9)
    return _finish(fig, ax, "step size ε (perturbation ε·d)", ylabel, title, legend_size=8)


def layer_bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], ylabel: str, title: str = "",
               log: bool = True):
    """Grouped bars: one group per layer, one bar per series (e.g. measured vs predicted)."""
    fig = _figure((min(14.0, max(6.0, 0.3 * len(labels) * len(series) + 2)), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, v) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, label=name, color=f"C{i}")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def labelled_loglog(x: Sequence[float], y: Sequence[float], labels: Sequence[str], xlabel: str, ylabel: str,
                    title: str = "", n_labels: int = 6):
    """Log-log scatter of ``|x|`` against ``|y|``, naming the ``n_labels`` points with the largest ``|x| * |y|``."""
    x, y = np.abs(np.asarray(x, dtype=float)), np.abs(np.asarray(y, dtype=float))
    fig = _figure((6, 4))
    ax = fig.add_subplot()
    keep = (x > 0) & (y > 0)
    ax.scatter(x[keep], y[keep], s=14, color="#4c72b0")
    for i in np.argsort(x * y)[::-1][:n_labels]:
        if keep[i]:
            ax.annotate(labels[i], (x[i], y[i]), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, xlabel, ylabel, title)


def interval_bars(labels: Sequence[str], estimate: Sequence[float], low: Sequence[float], high: Sequence[float],
                  ylabel: str, title: str = "", reference: float | None = 0.0):
    """One point per item with its interval as an error bar (e.g. a Hutchinson trace +- 2 standard errors).

    ``reference`` draws a horizontal line (default 0: does an interval cover it?); ``None`` draws none.
    """
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    if not (est.shape == lo.shape == hi.shape == (len(labels),)):
        raise ValueError(f"labels ({len(labels)}), estimate {est.shape}, low {lo.shape} and high {hi.shape} must match")
    fig = _figure((min(14.0, max(6.0, 0.3 * len(labels) + 2)), 3.8))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="o", ms=4, capsize=2, color="#4c72b0")
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def interval_curves(x: Sequence[float], series: Mapping[str, tuple], xlabel: str, ylabel: str, title: str = "",
                    logx: bool = False, logy: bool = False, reference: float | None = None):
    """Named curves over the same ``x``, each point with its interval as an error bar.

    ``series[label] = (estimate, low, high)``, three sequences as long as ``x`` (e.g. a block's mean
    output error and its bootstrap interval, per block). ``reference`` draws a horizontal line.
    """
    xs = np.asarray(x, dtype=float)
    fig = _figure((6.4, 3.8))
    ax = fig.add_subplot()
    for label, (est, lo, hi) in series.items():
        est, lo, hi = (np.asarray(v, dtype=float) for v in (est, lo, hi))
        if not (est.shape == lo.shape == hi.shape == xs.shape):
            raise ValueError(f"series[{label!r}]: estimate {est.shape}, low {lo.shape} and high {hi.shape} "
                             f"must each match x {xs.shape}")
        ax.errorbar(xs, est, yerr=[est - lo, hi - est], marker="o", ms=4, capsize=2, label=label)
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls="--")
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
    if logy:
        ax.set_yscale("log")
    return _finish(fig, ax, xlabel, ylabel, title, legend_size=8)
