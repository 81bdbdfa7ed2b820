import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure

from courseutils.core.errors import CourseError
from courseutils.viz.plot_quality import chunk_scatter, quality_vs_size, size_bars, trend_vs_published


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
