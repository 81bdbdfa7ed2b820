"""courseutils.viz.plot_sensitivity: the figures draw exactly the arrays they are given."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from courseutils.viz.plot_sensitivity import interval_bars  # noqa: E402


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
