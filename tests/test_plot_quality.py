import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from courseutils.core.errors import CourseError
from courseutils.viz.plot_quality import chunk_scatter, interval_plot, quality_vs_size, size_bars, trend_vs_published


def test_figures_are_returned():
    labels = ["F16", "Q8_0", "Q4_K_M"]
    assert isinstance(size_bars(labels, [11.1, 6.0, 3.6], [16.0, 8.5, 5.05]), Figure)
    assert isinstance(quality_vs_size(labels, [11.1, 6.0, 3.6], [16.0, 8.5, 5.05], [0.0, 1e-4, 1e-3],
                                      [70.0, 70.1, 70.4], ref_ppl=70.0), Figure)
    assert isinstance(trend_vs_published(["Q8_0", "Q4_K_M"], [1e-4, 1e-3], [0.00136, 0.03127]), Figure)
    assert isinstance(chunk_scatter({"Q4_K_M": [1e-3, 2e-3]}, {"Q4_K_M": [0.1, -0.2]}), Figure)


def test_bad_input():
    with pytest.raises(CourseError, match="same length"):
        size_bars(["a", "b"], [1.0], [2.0, 3.0])
    with pytest.raises(CourseError, match="positive"):
        trend_vs_published(["Q8_0"], [0.0], [0.001])
    with pytest.raises(CourseError, match="same"):
        chunk_scatter({"Q4_K_M": [1e-3]}, {"Q2_K": [0.1]})


def test_error_bars_are_the_intervals():
    fig = interval_plot(["Q8_0", "Q4_K_M"], {"dPPL %": ([0.1, 1.9], [(-0.2, 0.4), (0.5, 3.2)]),
                                             "KLD": ([4e-4, 1e-2], [(3e-4, 5e-4), (9e-3, 1.4e-2)])}, logy=["KLD"])
    assert isinstance(fig, Figure)
    bars = fig.axes[0].collections[0].get_segments()       # one vertical segment per variant
    assert np.allclose([s[:, 1] for s in bars], [(-0.2, 0.4), (0.5, 3.2)])
    fig = quality_vs_size(["F16", "Q8_0"], [11.1, 6.0], [16.0, 8.5], [0.0, 1e-4], [70.0, 70.1],
                          kld_ci=[(0, 0), (5e-5, 2e-4)], ppl_ci=[(70, 70), (69.9, 70.3)])
    assert isinstance(fig, Figure)
    with pytest.raises(CourseError, match="one \\(low, high\\) pair per variant"):
        interval_plot(["a", "b"], {"x": ([1.0, 2.0], [(0.0, 1.0)])})
    with pytest.raises(CourseError, match="log axis"):
        interval_plot(["a"], {"KLD": ([0.0], [(0.0, 0.0)])}, logy=["KLD"])
