"""Plots for lessons 00 and 03: file size, bits per weight and quality of quant variants.

Thin by design: every function takes arrays that a lesson has already computed and
returns a ``matplotlib`` figure. Nothing is computed here beyond axis limits, and no
global matplotlib setting is changed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import CourseError

__all__ = ["size_bars", "quality_vs_size", "trend_vs_published", "chunk_scatter", "interval_plot", "pareto_plot"]


def _yerr(estimate, low_high, n: int, name: str):
    """``(2, n)`` error-bar lengths below/above ``estimate`` from ``[(low, high), ...]`` (or None)."""
    if low_high is None:
        return None
    lh = np.asarray(low_high, dtype=float)
    if lh.shape != (n, 2):
        raise CourseError(f"{name} must hold one (low, high) pair per variant, shape ({n}, 2); got {lh.shape}")
    est = np.asarray(estimate, dtype=float)
    return np.vstack([est - lh[:, 0], lh[:, 1] - est]).clip(min=0)


def _check_same_length(**arrays) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise CourseError(f"arrays must have the same length; got {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise CourseError(f"nothing to plot: {', '.join(lengths)} are empty")
    return n


def size_bars(labels: Sequence[str], size_mib: Sequence[float], bpw: Sequence[float], title: str = ""):
    """Bar chart of file size per variant, each bar annotated with its bits per weight.

    Args:
        labels: variant names, e.g. ``["F16", "Q8_0", "Q4_K_M"]``.
        size_mib: file sizes in MiB, ``(n,)``.
        bpw: bits per weight of the tensor data, ``(n,)``.
    """
    import matplotlib.pyplot as plt

    _check_same_length(labels=labels, size_mib=size_mib, bpw=bpw)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bars = ax.bar(list(labels), np.asarray(size_mib, dtype=float), color="tab:blue", alpha=0.8)
    for bar, b in zip(bars, bpw):
        ax.annotate(f"{b:.2f} bpw", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("file size (MiB)")
    ax.set_ylim(0, 1.15 * max(size_mib))
    ax.set_title(title or "GGUF file size and bits per weight")
    fig.tight_layout()
    return fig


def quality_vs_size(labels: Sequence[str], size_mib: Sequence[float], bpw: Sequence[float],
                    kld: Sequence[float], ppl: Sequence[float], ref_ppl: float | None = None,
                    kld_ci=None, ppl_ci=None):
    """Two panels: file size vs mean KLD (log scale) and bits per weight vs perplexity.

    Variants with ``kld == 0`` (the reference itself) cannot sit on a log axis; they are
    left out of the left panel and named in its title.

    Args:
        labels, size_mib, bpw, kld, ppl: one entry per variant, ``(n,)`` each.
        ref_ppl: the reference perplexity, drawn as a dashed line in the right panel.
        kld_ci, ppl_ci: optional ``(low, high)`` per variant (e.g. bootstrap intervals), drawn
            as error bars.
    """
    import matplotlib.pyplot as plt

    _check_same_length(labels=labels, size_mib=size_mib, bpw=bpw, kld=kld, ppl=ppl)
    size_mib, bpw = np.asarray(size_mib, dtype=float), np.asarray(bpw, dtype=float)
    kld, ppl = np.asarray(kld, dtype=float), np.asarray(ppl, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    pos = kld > 0
    n = len(kld)
    kerr, perr = _yerr(kld, kld_ci, n, "kld_ci"), _yerr(ppl, ppl_ci, n, "ppl_ci")
    ax1.plot(size_mib[pos], kld[pos], "o-", color="tab:red")
    if kerr is not None:
        ax1.errorbar(size_mib[pos], kld[pos], yerr=kerr[:, pos], fmt="none", ecolor="tab:red", capsize=3)
    for x, y, name in zip(size_mib[pos], kld[pos], np.asarray(labels)[pos]):
        ax1.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=9)
    ax1.set_yscale("log")
    ax1.set_xlabel("file size (MiB)")
    ax1.set_ylabel("mean KLD to the reference (nats/token)")
    left_out = [str(n) for n, p in zip(labels, pos) if not p]
    ax1.set_title("size vs KLD" + (f" ({', '.join(left_out)}: KLD = 0, not shown)" if left_out else ""),
                  fontsize=10)
    ax1.grid(True, which="both", alpha=0.3)

    ax2.plot(bpw, ppl, "o-", color="tab:blue")
    if perr is not None:
        ax2.errorbar(bpw, ppl, yerr=perr, fmt="none", ecolor="tab:blue", capsize=3)
    for x, y, name in zip(bpw, ppl, labels):
        ax2.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=9)
    if ref_ppl is not None:
        ax2.axhline(ref_ppl, ls="--", color="gray", lw=1, label=f"reference ppl {ref_ppl:.4g}")
        ax2.legend(loc="upper right", fontsize=9)
    ax2.set_xlabel("bits per weight")
    ax2.set_ylabel("perplexity")
    ax2.set_title("bits per weight vs perplexity", fontsize=10)
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def trend_vs_published(labels: Sequence[str], live: Sequence[float], published: Sequence[float],
                       live_name: str = "tinycode (live)", published_name: str = "Llama-3-8B (published)",
                       ylabel: str = "mean KLD to F16 (nats/token)", live_ci=None):
    """One metric per quant type for two models on a shared log axis, to compare trends.

    Args:
        labels: quant types, in the order to draw them (e.g. largest file first).
        live, published: the metric for the live model and the published one, ``(n,)``;
            values must be positive (log axis).
        live_ci: optional ``(low, high)`` per type for the live metric, drawn as error bars.
    """
    import matplotlib.pyplot as plt

    _check_same_length(labels=labels, live=live, published=published)
    live, published = np.asarray(live, dtype=float), np.asarray(published, dtype=float)
    if (live <= 0).any() or (published <= 0).any():
        raise CourseError("live and published must be positive on a log axis; "
                          f"got live={live.tolist()}, published={published.tolist()}")
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(x, published, "s--", color="tab:gray", label=published_name)
    ax.plot(x, live, "o-", color="tab:red", label=live_name)
    lerr = _yerr(live, live_ci, len(live), "live_ci")
    if lerr is not None:
        ax.errorbar(x, live, yerr=lerr, fmt="none", ecolor="tab:red", capsize=3)
    ax.set_xticks(x)
    ax.set_xticklabels(list(labels))
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("same quant types, two models", fontsize=10)
    fig.tight_layout()
    return fig


def chunk_scatter(kld: dict[str, Sequence[float]], dppl_pct: dict[str, Sequence[float]]):
    """Per-chunk perplexity change (%) against per-chunk mean KLD (log x), one colour per variant.

    Args:
        kld: ``{variant: mean KLD of each chunk}``, each ``(n_chunk,)``, positive.
        dppl_pct: ``{variant: perplexity change of each chunk vs the reference, in %}``, same shapes.
    """
    import matplotlib.pyplot as plt

    if set(kld) != set(dppl_pct) or not kld:
        raise CourseError(f"kld and dppl_pct need the same, non-empty variants; got {sorted(kld)} and "
                          f"{sorted(dppl_pct)}")
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name in kld:
        x, y = np.asarray(kld[name], dtype=float), np.asarray(dppl_pct[name], dtype=float)
        _check_same_length(**{f"kld[{name!r}]": x, f"dppl_pct[{name!r}]": y})
        ax.scatter(x[x > 0], y[x > 0], label=name, alpha=0.8)
    ax.axhline(0, color="gray", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("mean KLD of the chunk (nats/token)")
    ax.set_ylabel("perplexity change vs reference (%)")
    ax.set_title("per chunk: perplexity change against KL divergence", fontsize=10)
    ax.legend(fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def interval_plot(labels: Sequence[str], panels: dict[str, tuple], logy: Sequence[str] = (), title: str = ""):
    """One panel per metric: each variant's estimate with its interval as an error bar.

    Args:
        labels: variant names, ``(n,)``.
        panels: ``{y label: (estimates (n,), [(low, high), ...] (n, 2))}``, e.g. the perplexity
            change in % and the mean KLD with their bootstrap intervals.
        logy: the y labels whose panel uses a log axis (values must be positive).
    """
    import matplotlib.pyplot as plt

    if not panels:
        raise CourseError("panels is empty: give at least one {label: (estimates, intervals)}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    x = np.arange(len(labels))
    for ax, (ylabel, (est, low_high)) in zip(axes[0], panels.items()):
        est = np.asarray(est, dtype=float)
        _check_same_length(labels=labels, estimates=est)
        yerr = _yerr(est, low_high, len(est), f"panels[{ylabel!r}] intervals")
        if ylabel in logy and (est <= 0).any():
            raise CourseError(f"panel {ylabel!r} is on a log axis but has values <= 0: {est.tolist()}")
        ax.errorbar(x, est, yerr=yerr, fmt="o", capsize=4, color="tab:red")
        if ylabel in logy:
            ax.set_yscale("log")
        else:
            ax.axhline(0, color="gray", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels(list(labels), rotation=30)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def pareto_plot(labels: Sequence[str], size_mib: Sequence[float], kld: Sequence[float], groups: Sequence[str],
                kld_ci=None, front: Sequence[int] = (), hollow: Sequence[str] = (), title: str = ""):
    """Size against mean KLD (log scale) for many variants, one marker per group, the front as a staircase.

    Args:
        labels, size_mib, kld, groups: one entry per variant, ``(n,)`` each; ``kld > 0``.
        kld_ci: optional ``(low, high)`` per variant, drawn as error bars.
        front: indices of the Pareto front (e.g. :func:`courseutils.algorithms.allocation.pareto_front`),
            joined by a step line.
        hollow: groups drawn with open markers (e.g. points not measured on the same footing).
    """
    from .plotting import _figure

    n = _check_same_length(labels=labels, size_mib=size_mib, kld=kld, groups=groups)
    size_mib, kld = np.asarray(size_mib, dtype=float), np.asarray(kld, dtype=float)
    if (kld <= 0).any():
        raise CourseError("kld must be > 0 for every variant (a log axis); leave the reference out")
    kerr = _yerr(kld, kld_ci, n, "kld_ci")
    fig = _figure((9, 5))
    ax = fig.add_subplot()
    markers = "osD^v<>Pph*X"
    for k, g in enumerate(dict.fromkeys(groups)):
        idx = np.array([i for i in range(n) if groups[i] == g])
        style = dict(marker=markers[k % len(markers)], ls="none", ms=7, label=g, color=f"C{k % 10}")
        if g in hollow:
            style.update(mfc="none")
        ax.plot(size_mib[idx], kld[idx], **style)
        if kerr is not None:
            ax.errorbar(size_mib[idx], kld[idx], yerr=kerr[:, idx], fmt="none", ecolor=f"C{k % 10}", capsize=2, lw=1)
    # labels of points at about the same size are stacked downwards so they stay readable
    span = max(float(size_mib.max() - size_mib.min()), 1e-9)
    placed: list[float] = []
    for i in np.lexsort((-kld, size_mib)):
        k = sum(abs(size_mib[i] - x) < 0.01 * span for x in placed)
        placed.append(size_mib[i])
        ax.annotate(labels[i], (size_mib[i], kld[i]), textcoords="offset points", xytext=(5, 3 - 8 * k), fontsize=7)
    front = list(front)
    if front:
        if any(not 0 <= i < n for i in front):
            raise CourseError(f"front holds an index outside 0..{n - 1}")
        ax.step(size_mib[front], kld[front], where="post", color="gray", lw=1, alpha=0.7, label="Pareto front")
    ax.set_yscale("log")
    ax.set_xlabel("size (MiB)")
    ax.set_ylabel("mean KLD to the reference (nats/token)")
    ax.set_title(title or "size vs KLD", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
