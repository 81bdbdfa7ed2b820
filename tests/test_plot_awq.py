import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.viz.plot_awq import alpha_curve, methods_plot


def test_alpha_curve_marks_the_chosen_point_at_its_loss():
    fig = alpha_curve([0.0, 0.1, 0.2, 0.3], [4.0, 3.0, 2.5, 2.8], 0.2)
    lines = fig.axes[0].get_lines()
    curve, star = lines[0], lines[1]
    assert np.allclose(curve.get_ydata(), [4.0, 3.0, 2.5, 2.8])
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (0.2, 2.5)
    assert "0.2" in star.get_label()


def test_alpha_curve_bad_input():
    with pytest.raises(CourseError, match="best=0.25 is not a point of the grid"):
        alpha_curve([0.0, 0.1], [1.0, 2.0], 0.25)
    with pytest.raises(CourseError, match="one length"):
        alpha_curve([0.0, 0.1], [1.0], 0.0)


def test_methods_plot_error_bars_are_the_intervals_and_published_values_are_drawn():
    live = [[2.0, 1.5, 1.0], [8.0, 4.0, 5.0]]
    ci = [[(1.0, 3.0), (0.6, 2.3), (0.3, 1.7)], [(6.0, 10.0), (2.0, 6.5), (3.5, 7.0)]]
    pub = [[10.2, 7.8, 5.4], [85.2, 41.9, 32.9]]
    fig = methods_plot(["W4 g128", "W3 g128"], ["RTN", "GPTQ", "AWQ"], live, ci, pub)
    left, right = fig.axes[:2]
    rtn_bars = left.collections[0].get_segments()           # the first method's error bars, one per bit width
    assert np.allclose([s[:, 1] for s in rtn_bars], [(1.0, 3.0), (6.0, 10.0)])
    assert np.allclose(right.get_lines()[0].get_ydata(), [10.2, 85.2])


def test_methods_plot_bad_input():
    with pytest.raises(CourseError, match=r"\(n_bits, n_methods\) = \(1, 2\)"):
        methods_plot(["W4"], ["RTN", "AWQ"], [[1.0]], [[(0.0, 2.0)]], [[1.0]])
    with pytest.raises(CourseError, match="inside its interval"):
        methods_plot(["W4"], ["RTN"], [[5.0]], [[(0.0, 2.0)]], [[1.0]])
