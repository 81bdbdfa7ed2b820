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


def test_pareto_plot_draws_every_group_and_the_front():
    from courseutils.viz.plot_quality import pareto_plot

    labels = ["Q8_0", "Q4_K_M", "Q4_K_M+im", "RTN w3"]
    size, kld = [6.0, 3.6, 3.6, 3.0], [1e-3, 3e-2, 2e-2, 9e-2]
    groups = ["llama.cpp", "llama.cpp", "llama.cpp + imatrix", "fake quant (torch)"]
    fig = pareto_plot(labels, size, kld, groups, kld_ci=[(k * 0.8, k * 1.2) for k in kld], front=[2, 0],
                      hollow=["fake quant (torch)"])
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["llama.cpp", "llama.cpp + imatrix", "fake quant (torch)", "Pareto front"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["llama.cpp"].get_xdata()) == [6.0, 3.6]
    assert lines["fake quant (torch)"].get_markerfacecolor() == "none"
    assert list(lines["Pareto front"].get_xdata()) == [3.6, 6.0]
    assert ax.get_yscale() == "log"


def test_pareto_plot_rejects_zero_kld_and_bad_front():
    from courseutils.viz.plot_quality import pareto_plot

    with pytest.raises(CourseError, match="kld must be > 0"):
        pareto_plot(["F16"], [11.0], [0.0], ["ref"])
    with pytest.raises(CourseError, match="outside"):
        pareto_plot(["a"], [1.0], [0.1], ["g"], front=[3])
