"""courseutils.viz.plot_sensitivity: the figures draw exactly the arrays they are given."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from courseutils.viz.plot_sensitivity import interval_bars, interval_curves  # noqa: E402


def test_interval_bars_draws_each_interval():
    est, lo, hi = np.array([1.0, -0.5, 2.0]), np.array([0.5, -1.5, 1.0]), np.array([1.2, 0.5, 3.5])
    fig = interval_bars(["a", "b", "c"], est, lo, hi, "trace")
    ax = fig.axes[0]
    line = ax.lines[0]                                     # the points
    np.testing.assert_allclose(line.get_ydata(), est)
    segs = ax.collections[0].get_segments()                # one vertical bar per item: (x, low) -> (x, high)
    np.testing.assert_allclose([s[:, 1].min() for s in segs], lo)
    np.testing.assert_allclose([s[:, 1].max() for s in segs], hi)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="must match"):
        interval_bars(["a"], est, lo, hi, "trace")


def test_interval_curves_draw_each_series_with_its_intervals():
    x = [1, 2, 4]
    series = {"a": ([0.9, 0.8, 0.7], [0.8, 0.7, 0.6], [1.0, 0.9, 0.75]), "b": ([0.5, 0.6, 0.7], [0.4, 0.5, 0.6],
                                                                          [0.6, 0.7, 0.8])}
    fig = interval_curves(x, series, "sequences", "Spearman", logx=True, reference=1.0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), series["a"][0])
    segs = ax.collections[0].get_segments()
    np.testing.assert_allclose([s[:, 1].min() for s in segs], series["a"][1])
    np.testing.assert_allclose([s[:, 1].max() for s in segs], series["a"][2])
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match=r"series\['a'\]"):
        interval_curves([1, 2], {"a": series["a"]}, "x", "y")
