"""The calibration-size widget of lesson 09: its report is recomputed here from scipy's Spearman on
explicitly built subsets, so a slicing or wiring bug makes these tests fail."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from courseutils.core.errors import CourseError
from courseutils.viz.widgets_stability import stability_explorer, stability_report

RNG = np.random.default_rng(1)
TRUE = np.exp(RNG.normal(size=40))                               # 40 channels
X = TRUE * np.exp(0.8 * RNG.normal(size=(24, 40)))               # 16 pool rows + 8 reference rows


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_report_is_spearman_of_disjoint_subsets_with_the_reference_mean(n):
    r = stability_report(X, 16, n, k=5)
    ref = X[16:].mean(0)
    want = [spearmanr(X[s:s + n].mean(0), ref).statistic for s in range(0, 16, n)]
    np.testing.assert_allclose(r["rhos"], want, rtol=1e-12)
    assert r["rho"] == pytest.approx(np.mean(want))
    assert r["top_ref"] == sorted(range(40), key=lambda i: -ref[i])[:5]
    top_first = set(sorted(range(40), key=lambda i: -X[:n].mean(0)[i])[:5])
    assert r["shared"] == [i in top_first for i in r["top_ref"]]


def test_more_sequences_agree_better_on_average():
    assert stability_report(X, 16, 16)["rho"] > stability_report(X, 16, 1)["rho"]


def test_explorer_redraws_on_layer_and_size():
    box = stability_explorer({"a": X, "b": X[:, ::-1]}, 16, sizes=(1, 4, 16), k=3)
    menu, slider, out = box.children
    assert "<b>a</b>" in out.value and "<b>1</b> sequence:" in out.value
    slider.value = 16
    assert f"(mean <b>{stability_report(X, 16, 16)['rho']:.3f}</b>)" in out.value
    menu.value = "b"
    assert "<b>b</b>" in out.value and "<b>16</b> sequences" in out.value


def test_bad_arguments_are_named():
    with pytest.raises(CourseError, match="n_pool=24"):
        stability_report(X, 24, 1)
    with pytest.raises(CourseError, match="k=41"):
        stability_report(X, 16, 1, k=41)
    with pytest.raises(CourseError, match=r"sizes=\[1, 32\]"):
        stability_explorer({"a": X}, 16, sizes=(1, 32))
    with pytest.raises(CourseError, match="layer='c'"):
        stability_explorer({"a": X}, 16, layer="c")
