"""courseutils.numerics.linear: closed-form error bounds, brute-force grids and argument checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.core.errors import CourseError
from courseutils.numerics.linear import dequantize_linear, error_metrics, fake_quantize, quantize_linear


def _W(seed: int = 0, shape=(16, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * rng.uniform(0.1, 3, (shape[0], 1))).astype(np.float32)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
@pytest.mark.parametrize("granularity,group_size", [("tensor", None), ("channel", None), ("group", 16)])
def test_round_trip_error_at_most_half_a_step(bits, scheme, granularity, group_size):
    W = _W(bits) + (0.7 if scheme == "zeropoint" else 0.0)  # lopsided ranges for zero-point
    qt = quantize_linear(W, bits, scheme, granularity, group_size)
    W_hat = dequantize_linear(qt)
    # broadcast each set's step s back onto its weights
    if granularity == "tensor":
        s = np.full(W.shape, float(qt.s))
    elif granularity == "channel":
        s = np.broadcast_to(qt.s, W.shape)
    else:
        s = np.repeat(qt.s, group_size, axis=1)
    assert np.all(np.abs(W - W_hat) <= s / 2 * (1 + 1e-4) + 1e-7)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if scheme == "absmax" else (0, 2**bits - 1)
    assert qt.q.min() >= lo and qt.q.max() <= hi
    # the grid is used: the extreme value of the range lands on an extreme code
    assert (qt.q.max() == hi) or (qt.q.min() == lo)


def test_absmax_reconstruction_equals_brute_force_nearest_grid_point():
    W = _W(1, (4, 32))
    qt = quantize_linear(W, 4, "absmax", "channel")
    W_hat = dequantize_linear(qt)
    grid = qt.s * np.arange(-7, 8)[None, :]  # (4, 15): every representable value per row
    nearest = np.abs(W[:, :, None] - grid[:, None, :]).min(axis=2)
    np.testing.assert_allclose(np.abs(W - W_hat), nearest, atol=1e-6)


def test_zero_is_exact_and_zeropoint_uses_the_whole_range():
    W = np.abs(_W(2, (8, 32))) + 0.1  # all positive: absmax wastes the negative half
    W[:, 0] = 0.0
    for scheme in ("absmax", "zeropoint"):
        W_hat = fake_quantize(W, 4, scheme, "channel")
        assert np.all(W_hat[:, 0] == 0.0)
    mse_abs = error_metrics(W, fake_quantize(W, 4, "absmax", "channel"))["mse"]
    mse_zp = error_metrics(W, fake_quantize(W, 4, "zeropoint", "channel"))["mse"]
    assert mse_zp < mse_abs / 3  # 15 steps over [0, max] instead of 7


def test_finer_granularity_never_hurts_and_outlier_explodes_per_tensor_error():
    W = _W(3, (32, 128))
    errs = [error_metrics(W, fake_quantize(W, 4, "absmax", g, gs))["mse"]
            for g, gs in (("tensor", None), ("channel", None), ("group", 32))]
    assert errs[0] >= errs[1] >= errs[2]
    W_out = W.copy()
    W_out[5, 7] = 100 * np.abs(W).max()
    e_tensor = error_metrics(W_out, fake_quantize(W_out, 4, "absmax", "tensor"))["mse"]
    e_group = error_metrics(W_out, fake_quantize(W_out, 4, "absmax", "group", 32))["mse"]
    assert e_tensor > 20 * errs[0]  # the outlier stretches every step of the tensor
    assert e_group < 5 * errs[2]  # only its own group pays


def test_error_metrics_closed_form():
    W = np.array([[1.0, -2.0], [3.0, 4.0]])
    W_hat = W + np.array([[0.1, 0.0], [0.0, -0.2]])
    m = error_metrics(W, W_hat)
    assert m["mse"] == pytest.approx((0.01 + 0.04) / 4)
    assert m["max_abs"] == pytest.approx(0.2)
    assert m["sqnr_db"] == pytest.approx(10 * np.log10(30 / 0.05))
    assert error_metrics(W, W)["sqnr_db"] == float("inf")


def test_clip_trades_range_for_resolution():
    W = _W(4, (8, 64))
    qt = quantize_linear(W, 8, "absmax", "channel", clip=0.5)
    W_hat = dequantize_linear(qt)
    inside = np.abs(W) <= 0.5 * np.abs(W).max(axis=1, keepdims=True)
    s = np.broadcast_to(qt.s, W.shape)
    assert np.all(np.abs(W - W_hat)[inside] <= s[inside] / 2 * (1 + 1e-4))
    assert np.all(np.abs(W_hat) <= 0.5 * np.abs(W).max(axis=1, keepdims=True) * (1 + 1e-6))


def test_edge_cases_zeros_constant_torch_and_dtypes():
    Z = np.zeros((4, 32), np.float32)
    for scheme in ("absmax", "zeropoint"):
        assert np.array_equal(fake_quantize(Z, 4, scheme, "group", 8), Z)
        C = np.full((4, 32), -0.37, np.float32)
        np.testing.assert_allclose(fake_quantize(C, 4, scheme, "channel"), C, rtol=1e-6)
    W = _W(5, (8, 32))
    t = torch.from_numpy(W).to(torch.bfloat16)
    assert fake_quantize(t, 8).shape == (8, 32)
    np.testing.assert_allclose(fake_quantize(W.astype(np.float16), 8, granularity="channel"),
                               fake_quantize(W.astype(np.float16).astype(np.float32), 8, granularity="channel"))


@pytest.mark.parametrize("kwargs,match", [
    ({"bits": 1}, r"bits=1; allowed: integers 2\.\.8"),
    ({"bits": 9}, "bits=9"),
    ({"bits": 4.0}, "bits=4.0"),
    ({"scheme": "minmax"}, "scheme='minmax'"),
    ({"granularity": "row"}, "granularity='row'"),
    ({"granularity": "group", "group_size": 24},
     r"group_size=24 does not divide the row length 64; allowed: \[1, 2, 4"),
    ({"granularity": "group"}, "group_size=None"),
    ({"granularity": "channel", "group_size": 8}, "only used with granularity='group'"),
    ({"clip": 0.0}, "clip=0.0"),
])
def test_bad_arguments_name_parameter_value_and_allowed(kwargs, match):
    with pytest.raises(CourseError, match=match):
        quantize_linear(_W(), **kwargs)


def test_bad_inputs():
    with pytest.raises(CourseError, match="dtype int64"):
        quantize_linear(np.ones((2, 4), np.int64))
    with pytest.raises(CourseError, match="NaN or inf"):
        quantize_linear(np.array([[1.0, np.inf]], np.float32))
    with pytest.raises(CourseError, match="2-D"):
        quantize_linear(np.ones(8, np.float32), granularity="channel")
    with pytest.raises(CourseError, match="numpy array"):
        quantize_linear([[1.0, 2.0]])
    with pytest.raises(CourseError, match="shape"):
        error_metrics(np.ones(3), np.ones(4))


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
def test_clip_search_ratio_one_is_plain_quantization_and_the_search_never_loses(bits, scheme):
    from courseutils.numerics.linear import clip_search

    rng = np.random.default_rng(bits)
    W = (rng.standard_t(df=3, size=(16, 128)) * 0.02).astype(np.float32)  # heavy tails: clipping pays
    res = clip_search(W, bits, scheme, "group", 64, ratios=np.linspace(0.5, 1.0, 11))
    plain = float(np.mean((W.astype(np.float64) - fake_quantize(W, bits, scheme, "group", 64)) ** 2))
    assert res.ratios[-1] == 1.0 and res.noclip_mse == pytest.approx(plain, rel=1e-9)
    assert res.best_mse <= res.noclip_mse and res.set_mse <= res.best_mse * (1 + 1e-12)
    # brute force: each ratio's MSE is fake_quantize with that clip
    for c, m in zip(res.ratios, res.mse):
        ref = float(np.mean((W.astype(np.float64) - fake_quantize(W, bits, scheme, "group", 64, clip=float(c))) ** 2))
        assert m == pytest.approx(ref, rel=1e-9)
    assert res.best_ratio < 1.0 and res.saving > 0  # heavy-tailed groups: some clipping helps


def test_clip_search_rejects_ratios_outside_the_unit_interval():
    from courseutils.numerics.linear import clip_search

    with pytest.raises(CourseError):
        clip_search(_W(), 4, ratios=[0.0, 0.5])
