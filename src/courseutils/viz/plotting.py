"""Thin plotting helpers: they take computed arrays and return a matplotlib Figure.

Nothing here computes a result or changes global matplotlib settings; lessons compute,
then call one of these to draw. Other lessons may add functions in the same style.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "plot_bit_fields",
    "plot_lines",
    "plot_bars",
    "plot_hist_with_levels",
    "plot_block_layout",
    "plot_scatter_labels",
]

_FIELD_COLORS = {"sign": "#d62728", "exponent": "#1f77b4", "mantissa": "#2ca02c"}


def _png_in_notebooks() -> None:
    """Inside IPython, make ``display(fig)`` draw a PNG (what ``%matplotlib inline`` sets up).

    Our figures are plain ``Figure`` objects, not registered with pyplot (no global figure
    list, nothing shown twice, nothing leaked), so they need the PNG formatter even when
    nothing has touched pyplot yet. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from matplotlib.figure import Figure

    if Figure not in shell.display_formatter.formatters["image/png"].type_printers:
        select_figure_formats(shell, {"png"})


def _figure(figsize):
    from matplotlib.figure import Figure

    _png_in_notebooks()

    return Figure(figsize=figsize, layout="constrained")


def plot_bit_fields(fields: Sequence[tuple[str, str]], title: str = ""):
    """One box per bit, coloured by field: ``fields`` = [("sign", "0"), ("exponent", "01111"), ...]."""
    bits = [(name, b) for name, s in fields for b in s]
    fig = _figure((max(4.0, 0.32 * len(bits) + 1), 1.3))
    ax = fig.add_subplot()
    for i, (name, b) in enumerate(bits):
        ax.add_patch(_rect(i, _FIELD_COLORS.get(name, "#7f7f7f")))
        ax.text(i + 0.5, 0.5, b, ha="center", va="center", fontsize=10, color="white", family="monospace")
    start = 0
    for name, s in fields:
        ax.text(start + len(s) / 2, -0.35, f"{name} ({len(s)})", ha="center", va="center", fontsize=8)
        start += len(s)
    ax.set_xlim(0, len(bits))
    ax.set_ylim(-0.7, 1.05)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _rect(x: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.04, 0.05), 0.92, 0.9, color=color)


def plot_lines(x: Sequence, ys: dict[str, Sequence], xlabel: str, ylabel: str, title: str = "",
               logy: bool = False, markers: bool = True):
    """Several named curves over the same x (e.g. error vs bits for each scheme)."""
    fig = _figure((6, 3.6))
    ax = fig.add_subplot()
    for label, y in ys.items():
        ax.plot(x, y, marker="o" if markers else None, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_bars(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str = "",
              reference: dict[str, float] | None = None, annotate: str | None = "{:.2f}"):
    """A bar per label; ``reference`` draws named horizontal lines (e.g. published figures)."""
    fig = _figure((max(5.0, 0.45 * len(labels) + 2), 3.6))
    ax = fig.add_subplot()
    bars = ax.bar(range(len(labels)), values, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if annotate:
        for b, v in zip(bars, values):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), annotate.format(v), ha="center",
                    va="bottom", fontsize=7)
    for i, (name, level) in enumerate((reference or {}).items()):
        ax.axhline(level, color=f"C{i + 1}", ls="--", lw=1, label=name)
    if reference:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def plot_hist_with_levels(values: np.ndarray, levels: dict[str, np.ndarray], bins: int = 200,
                          xlabel: str = "weight", title: str = ""):
    """Histogram of ``values`` with one row of tick marks per set of representable levels."""
    fig = _figure((7, 2.4 + 0.4 * len(levels)))
    ax = fig.add_subplot()
    ax.hist(np.ravel(values), bins=bins, color="#bbbbbb", density=True)
    top = ax.get_ylim()[1]
    for i, (name, lv) in enumerate(levels.items()):
        y = top * (1.05 + 0.12 * i)
        ax.plot(lv, np.full(len(lv), y), "|", ms=9, color=f"C{i}", label=f"{name} ({len(lv)} levels)")
    ax.set_ylim(0, top * (1.15 + 0.12 * len(levels)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper left")
    if title:
        ax.set_title(title)
    return fig


_BLOCK_FIELD_COLORS = {"d": "#1f77b4", "dmin": "#9ecae1", "m": "#9ecae1", "scales": "#2ca02c",
                       "qs": "#ff7f0e", "ql": "#ff7f0e", "qh": "#d62728", "hmask": "#d62728", "x": "#7f7f7f"}


def plot_block_layout(layouts: Sequence, title: str = "bytes per block, by field"):
    """One horizontal bar per block layout (``courseutils.ggml.blocks.BlockLayout``), split into its fields.

    Colours follow the field's role: scales (d, dmin, m, scales), low bits (qs, ql), high bits (qh, hmask).
    """
    fig = _figure((8, 0.55 * len(layouts) + 1.6))
    ax = fig.add_subplot()
    names, seen = [], {}
    for row, layout in enumerate(layouts):
        for fname, (a, b) in layout.offsets().items():
            color = _BLOCK_FIELD_COLORS.get(fname, "#7f7f7f")
            bar = ax.barh(row, b - a, left=a, color=color, edgecolor="white")
            seen.setdefault(fname, bar)
            if b - a >= 8:
                ax.text((a + b) / 2, row, fname, ha="center", va="center", fontsize=7, color="white")
        names.append(f"{layout.name}: {layout.block_size} w, {layout.type_size} B, {layout.bpw:.4g} bpw")
    ax.set_yticks(range(len(layouts)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("byte offset inside the block")
    ax.legend(seen.values(), seen.keys(), fontsize=7, ncol=min(len(seen), 8), loc="lower right")
    ax.set_title(title, fontsize=10)
    return fig


def plot_scatter_labels(x: Sequence[float], y: Sequence[float], labels: Sequence[str], xlabel: str, ylabel: str,
                        title: str = "", logy: bool = False):
    """Labelled points (e.g. file size vs error per quant type)."""
    fig = _figure((6, 4))
    ax = fig.add_subplot()
    ax.scatter(x, y, color="#4c72b0")
    for xi, yi, lab in zip(x, y, labels):
        ax.annotate(lab, (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig
