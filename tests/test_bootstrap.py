"""Paired bootstrap intervals: exact cases, agreement with scipy and with theory, coverage."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from courseutils.core.errors import CourseError
from courseutils.numerics.bootstrap import Interval, mean_ci, ppl_diff_ci, spearman_ci, spearman_diff_ci


def test_identical_models_are_indistinguishable():
    nll = np.random.default_rng(0).gamma(2.0, 1.5, size=(12, 64))
    ci = ppl_diff_ci(nll, nll.copy())
    assert ci.estimate == ci.low == ci.high == 0.0
    assert "indistinguishable" in ci.verdict("Q8_0's perplexity", "F16's")


def test_a_constant_shift_is_exact_in_every_replicate():
    nll = np.random.default_rng(1).gamma(2.0, 1.5, size=(8, 32))
    ci = ppl_diff_ci(nll, nll + 0.01)
    assert ci.estimate == pytest.approx(np.expm1(0.01)) and ci.low == pytest.approx(ci.high)
    assert ci.verdict("Q2_K's perplexity", "F16's", higher="worse", lower="better").startswith(
        "Q2_K's perplexity is worse than F16's")


def test_estimate_is_the_ratio_of_perplexities():
    rng = np.random.default_rng(2)
    a = rng.gamma(2.0, 1.5, size=(10, 50))
    b = a + rng.normal(0.02, 0.3, size=a.shape)
    ci = ppl_diff_ci(a, b)
    assert ci.estimate == pytest.approx(np.exp(b.mean()) / np.exp(a.mean()) - 1)
    assert ci.low < ci.estimate < ci.high


def test_pairing_narrows_the_interval():
    """Correlated per-token losses: the paired interval is far narrower than the spread of either model."""
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 1.5, size=(20, 64))
    b = a + rng.normal(0.0, 0.05, size=a.shape)
    paired = ppl_diff_ci(a, b)
    unpaired = ppl_diff_ci(a, b[rng.permutation(20)])  # shuffling chunks breaks the pairing
    assert (paired.high - paired.low) < 0.2 * (unpaired.high - unpaired.low)


def test_chunks_are_wider_than_tokens_when_tokens_of_a_chunk_share_context():
    rng = np.random.default_rng(4)
    chunk_effect = rng.normal(0, 0.2, size=(16, 1))  # one chunk is harder for the quantized model
    a = rng.gamma(2.0, 1.5, size=(16, 128))
    b = a + chunk_effect + rng.normal(0, 0.05, size=a.shape)
    by_chunk, by_token = ppl_diff_ci(a, b, unit="chunk"), ppl_diff_ci(a, b, unit="token")
    assert by_chunk.estimate == pytest.approx(by_token.estimate)
    assert (by_chunk.high - by_chunk.low) > 3 * (by_token.high - by_token.low)


def test_mean_ci_matches_the_normal_theory_for_a_large_sample():
    rng = np.random.default_rng(5)
    v = rng.exponential(0.03, size=(400, 1))
    ci = mean_ci(v, n_boot=4000)
    se = v.std(ddof=1) / np.sqrt(len(v))
    assert ci.estimate == pytest.approx(v.mean())
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_mean_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(6)
    hits = 0
    for trial in range(200):
        v = rng.normal(1.0, 1.0, size=(60, 1))
        hits += mean_ci(v, n_boot=500, seed=trial).covers(1.0)
    assert 0.88 <= hits / 200 <= 0.99


def test_spearman_estimate_is_scipys_and_perfect_order_is_certain():
    rng = np.random.default_rng(7)
    x = rng.normal(size=16)
    y = x + rng.normal(0, 0.7, size=16)
    ci = spearman_ci(x, y)
    assert ci.estimate == pytest.approx(spearmanr(x, y).statistic)
    assert ci.low < ci.estimate < ci.high <= 1.0
    perfect = spearman_ci(x, 3 * x + 1)
    assert perfect.estimate == perfect.low == perfect.high == pytest.approx(1.0)


def test_few_points_give_a_wide_rank_interval():
    rng = np.random.default_rng(8)
    x = rng.normal(size=8)
    y = x + rng.normal(0, 1.0, size=8)
    ci = spearman_ci(x, y)
    assert ci.high - ci.low > 0.5


def test_spearman_diff_is_the_difference_of_scipys_and_pairing_narrows_it():
    rng = np.random.default_rng(9)
    y = rng.normal(size=20)
    a = y + rng.normal(0, 0.3, size=20)           # a good score
    b = a + rng.normal(0, 0.3, size=20)           # a noisier copy of it: shares a's luck
    ci = spearman_diff_ci(a, b, y)
    assert ci.estimate == pytest.approx(spearmanr(a, y).statistic - spearmanr(b, y).statistic)
    assert ci.low <= ci.estimate <= ci.high
    # paired: narrower than the interval of an unpaired bootstrap (a and b resampled independently)
    rng2 = np.random.default_rng(1)
    i1, i2 = rng2.integers(0, 20, (2000, 20)), rng2.integers(0, 20, (2000, 20))
    unpaired = [spearmanr(a[r1], y[r1]).statistic - spearmanr(b[r2], y[r2]).statistic for r1, r2 in zip(i1, i2)]
    lo, hi = np.nanquantile(unpaired, [0.025, 0.975])
    assert ci.high - ci.low < 0.9 * (hi - lo)
    same = spearman_diff_ci(a, 2 * a + 1, y)      # the same ranking: zero in every replicate
    assert same.estimate == same.low == same.high == 0.0
    assert "indistinguishable" in same.verdict("a's rank correlation", "b's")
    with pytest.raises(CourseError, match="equal length"):
        spearman_diff_ci(a, b[:5], y)


def test_interval_format_and_covers():
    ci = Interval(0.0185, 0.0052, 0.0321)
    assert ci.format(scale=100, suffix=" %") == "+1.85 % [+0.52, +3.21]"
    assert not ci.covers(0.0) and ci.covers(0.02)


@pytest.mark.parametrize("call, match", [
    (lambda: ppl_diff_ci(np.ones((4, 8)), np.ones((4, 9))), "paired"),
    (lambda: ppl_diff_ci(np.ones((4, 8)), np.full((4, 8), np.nan)), "NaN"),
    (lambda: ppl_diff_ci(np.ones((2, 2, 2)), np.ones((2, 2, 2))), "shape"),
    (lambda: ppl_diff_ci(np.ones(4), np.ones(4), unit="sentence"), "unit='sentence'"),
    (lambda: mean_ci(np.ones(10), level=95), "level=95"),
    (lambda: mean_ci(np.ones(10), n_boot=10), "n_boot=10"),
    (lambda: spearman_ci([1, 2], [1, 2]), "length >= 3"),
    (lambda: spearman_ci([1, 1, 1], [1, 2, 3]), "constant"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(CourseError, match=match):
        call()


def test_db_gain_estimate_and_replicates_match_a_brute_force_loop():
    from courseutils.numerics.bootstrap import db_gain_ci, resample_indices

    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 1.0, 40)
    b = a * rng.uniform(0.3, 0.7, 40)  # B has about half A's error on every unit
    ci = db_gain_ci(a, b, n_boot=500, seed=7)
    assert np.isclose(ci.estimate, 10 * np.log10(a.sum() / b.sum()))
    reps = [10 * np.log10(a[i].sum() / b[i].sum()) for i in resample_indices(40, 500, 7)]
    assert np.isclose(ci.low, np.quantile(reps, 0.025)) and np.isclose(ci.high, np.quantile(reps, 0.975))
    assert ci.low > 0  # B is better on every unit, so the interval excludes 0


def test_db_gain_of_a_quantizer_against_itself_is_zero_and_indistinguishable():
    from courseutils.numerics.bootstrap import db_gain_ci

    a = np.random.default_rng(0).gamma(2.0, 1.0, 30)
    ci = db_gain_ci(a, a.copy())
    assert ci.estimate == 0 and ci.low == 0 and ci.high == 0 and "indistinguishable" in ci.verdict("B", "A")
    with pytest.raises(CourseError):
        db_gain_ci(a, a[:-1])
