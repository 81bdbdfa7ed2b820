"""courseutils.numerics.codebooks: Lloyd–Max against Max's published Gaussian levels, and against NF4."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from courseutils.core.errors import CourseError
from courseutils.numerics import formats as F
from courseutils.numerics.codebooks import block_normalize, fake_quantize_codebook, fit_block_codebook, lloyd_max


def _gaussian_quadrature(n: int = 1_000_000) -> np.ndarray:
    """N(0, 1) represented by its n equal-mass quantile midpoints (deterministic, no sampling noise)."""
    return norm.ppf((np.arange(n) + 0.5) / n)


def test_two_bit_gaussian_converges_to_max_1960_levels():
    fit = lloyd_max(_gaussian_quadrature(), 4)
    assert fit.converged
    # J. Max, "Quantizing for minimum distortion", IRE Trans. Inf. Theory 6 (1960), table I, N = 4
    np.testing.assert_allclose(fit.code, [-1.510, -0.4528, 0.4528, 1.510], atol=1.5e-3)
    assert fit.mse == pytest.approx(0.1175, abs=5e-4)  # Max's minimum distortion for N = 4


def test_one_bit_gaussian_is_plus_minus_the_half_normal_mean():
    fit = lloyd_max(_gaussian_quadrature(), 2)
    np.testing.assert_allclose(fit.code, [-np.sqrt(2 / np.pi), np.sqrt(2 / np.pi)], atol=1e-4)


def test_lloyd_finds_local_optima_and_the_brute_force_optimum_is_one_of_its_fixed_points():
    """On 7 points with 2 levels the optimum is a split of the sorted points: try every split.

    Lloyd's algorithm only guarantees a local minimum (for a log-concave density such as the
    Gaussian the minimum is unique, Fleischer 1964, which is why the test above is global).
    """
    x = np.array([-3.0, -1.0, -0.5, 0.2, 0.4, 2.0, 5.0])
    splits = [((x[:k] - x[:k].mean()) ** 2).sum() + ((x[k:] - x[k:].mean()) ** 2).sum() for k in range(1, 7)]
    k = int(np.argmin(splits)) + 1
    at_best = lloyd_max(x, 2, init=[x[:k].mean(), x[k:].mean()])
    assert at_best.n_iter == 1 and at_best.mse * x.size == pytest.approx(min(splits))
    local = lloyd_max(x, 2, init=[-1.0, 1.0])
    assert local.converged and local.mse * x.size >= min(splits) - 1e-12
    assert any(local.mse * x.size == pytest.approx(v) for v in splits)  # it stops at a split's means


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_started_from_nf4_it_never_has_higher_mse_than_nf4_on_its_training_data(seed):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_t(df=4 + seed, size=(32, 128)).astype(np.float32) * 0.02 for _ in range(3)]
    fit = fit_block_codebook(mats, 16, 64, init=F.NF4_CODE)
    for_lm = sum(((W - fake_quantize_codebook(W, fit.code, 64)).astype(np.float64) ** 2).sum() for W in mats)
    for_nf4 = sum(((W - fake_quantize_codebook(W, F.NF4_CODE, 64)).astype(np.float64) ** 2).sum() for W in mats)
    assert for_lm <= for_nf4 * (1 + 1e-6)
    assert for_lm < for_nf4  # and on such data strictly lower: equal mass is not minimum MSE


def test_fake_quantize_codebook_equals_formats_nf4_path():
    W = np.random.default_rng(4).standard_normal((8, 128)).astype(np.float32)
    idx, s = F.quantize_to_code(W, F.NF4_CODE, block_size=64)
    np.testing.assert_array_equal(fake_quantize_codebook(W, F.NF4_CODE, 64),
                                  F.dequantize_code(idx, s, F.NF4_CODE, block_size=64))


def test_block_normalize_and_argument_checks():
    y, s = block_normalize(np.array([[1.0, -4.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), 4)
    np.testing.assert_array_equal(s, [4.0, 0.0])
    np.testing.assert_array_equal(y, [[0.25, -1.0, 0.5, 0.0], [0, 0, 0, 0]])
    with pytest.raises(CourseError):
        block_normalize(np.ones(10), 4)
    with pytest.raises(CourseError):
        lloyd_max(np.ones(5), 1)
    with pytest.raises(CourseError):
        lloyd_max([np.nan, 1.0], 2)
