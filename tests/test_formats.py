"""courseutils.numerics.formats against numpy's float16, torch's bfloat16/float8 and the QLoRA table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.numerics import formats as F
from courseutils.core.errors import CourseError


def _probe_values(rng: np.random.Generator, n: int = 20000) -> np.ndarray:
    """Values spread over many binades, both signs, plus exact ties and specials."""
    mag = np.exp2(rng.uniform(-30, 20, n))
    x = (mag * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    return np.concatenate([x, np.float32([0.0, -0.0, 1.0, -2.5, 65504, 65519, 65520, 1e-8, 6e-8, np.inf, -np.inf])])


def test_fp16_matches_numpy_bit_for_bit():
    x = _probe_values(np.random.default_rng(0))
    with np.errstate(over="ignore"):  # numpy's cast overflows to inf, as IEEE rounding should
        half = x.astype(np.float16)
    assert np.array_equal(F.encode(x, "FP16").astype(np.uint16), half.view(np.uint16))
    assert np.array_equal(F.round_to_format(x, "FP16"), half.astype(np.float64))


def test_fp32_fields_match_the_stored_bits():
    x = _probe_values(np.random.default_rng(1))
    assert np.array_equal(F.encode(x, "FP32").astype(np.uint32), x.view(np.uint32))
    codes = x.view(np.uint32)
    assert np.array_equal(F.decode(codes, "FP32"), x.astype(np.float64))


def test_bf16_matches_torch():
    x = _probe_values(np.random.default_rng(2))
    x = x[np.abs(x) < 3e38]
    t = torch.from_numpy(x).to(torch.bfloat16)
    expected = t.view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(F.encode(x, "BF16").astype(np.uint16), expected)
    assert np.array_equal(F.round_to_format(x, "BF16"), t.float().numpy().astype(np.float64))


@pytest.mark.parametrize("fmt,tdtype", [("FP8_E4M3", torch.float8_e4m3fn), ("FP8_E5M2", torch.float8_e5m2)])
def test_fp8_decode_every_code_like_torch(fmt, tdtype):
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    expected = codes.view(tdtype).float().numpy().astype(np.float64)
    got = F.decode(np.arange(256), fmt)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.array_equal(got[ok], expected[ok])
    assert np.array_equal(np.signbit(got[ok]), np.signbit(expected[ok]))


@pytest.mark.parametrize("fmt,tdtype", [("FP8_E4M3", torch.float8_e4m3fn), ("FP8_E5M2", torch.float8_e5m2)])
def test_fp8_rounding_like_torch(fmt, tdtype):
    rng = np.random.default_rng(3)
    x = _probe_values(rng)
    # every midpoint between neighbouring values is a tie: ties-to-even must agree too
    v = F.format_values(fmt)
    mids = ((v[1:] + v[:-1]) / 2).astype(np.float32)
    x = np.concatenate([x, mids, -mids, np.float32([500.0, 1e6, 61440.0])])
    expected = torch.from_numpy(x).to(tdtype).view(torch.uint8).numpy()
    assert np.array_equal(F.encode(x, fmt).astype(np.uint8), expected)


@pytest.mark.parametrize("fmt,tdtype", [("FP16", torch.float16), ("BF16", torch.bfloat16),
                                        ("FP8_E4M3", torch.float8_e4m3fn), ("FP8_E5M2", torch.float8_e5m2),
                                        ("FP32", torch.float32)])
def test_range_constants_match_torch_finfo(fmt, tdtype):
    f = F.get_format(fmt)
    fi = torch.finfo(tdtype)
    assert f.max_finite == fi.max
    assert f.min_normal == fi.smallest_normal
    assert f.epsilon == fi.eps
    assert f.total_bits == fi.bits


def test_float_bits_fields_and_formula():
    b = F.float_bits(-2.5, "FP16")  # -2.5 = -1.25 * 2^1: e = 1 + 15, m = 0.25 * 1024
    assert (b.sign, b.exponent, b.mantissa) == (1, 16, 256)
    assert b.bits == "1 10000 0100000000"
    assert b.value == -2.5
    assert "2^(16-15)" in b.formula()
    t = F.float_bits(0.1, "BF16")
    assert t.value == float(torch.tensor(0.1).to(torch.bfloat16).float())
    assert t.value != 0.1  # 0.1 is not representable: the stored value is the rounded one
    sub = F.float_bits(2.0**-20, "FP16")
    assert sub.exponent == 0 and "subnormal" in sub.formula()
    assert F.float_bits(1e6, "FP16").formula().endswith("inf")


def test_e4m3_has_no_infinity_and_saturates():
    f = F.get_format("FP8_E4M3")
    assert f.max_finite == 448.0
    assert F.round_to_format([1e9, -np.inf], f).tolist() == [448.0, -448.0]
    assert F.round_to_format([1e9], "FP8_E5M2")[0] == np.inf
    assert int(F.encode(np.nan, f)) == 0x7F


def test_format_values_count():
    # E4M3fn: 256 codes - 2 NaNs, with +0 and -0 merged -> 253 distinct finite values
    assert F.format_values("FP8_E4M3").size == 253
    # E5M2: 256 - 2 inf - 6 NaN, zeros merged -> 247
    assert F.format_values("FP8_E5M2").size == 247


def test_nf4_table_is_the_quantile_construction():
    assert F.NF4_CODE.size == 16 and F.NF4_CODE[0] == -1 and F.NF4_CODE[-1] == 1
    assert 0.0 in F.NF4_CODE
    np.testing.assert_allclose(F.nf4_from_quantiles(), F.NF4_CODE, atol=1e-6)


def test_quantize_to_code_is_nearest_level_brute_force():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((64, 128)).astype(np.float32)
    for code in (F.NF4_CODE, F.fp_code("FP8_E4M3")):
        idx, s = F.quantize_to_code(W, code, block_size=64)
        blocks = W.reshape(-1, 64) / s[:, None]
        brute = np.abs(blocks[..., None] - code[None, None, :]).min(axis=-1)
        got = np.abs(blocks - code[idx.reshape(-1, 64)])
        np.testing.assert_allclose(got, brute, atol=1e-6)
        W_hat = F.dequantize_code(idx, s, code, block_size=64)
        assert W_hat.shape == W.shape
        # the absmax of each block is reproduced exactly (it maps to +-1)
        i = np.abs(W.reshape(-1, 64)).argmax(axis=1)
        np.testing.assert_allclose(np.take_along_axis(W_hat.reshape(-1, 64), i[:, None], 1),
                                   np.take_along_axis(W.reshape(-1, 64), i[:, None], 1), rtol=1e-6)


def test_fake_quantize_float_per_block():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((8, 64)).astype(np.float32)
    W_hat = F.fake_quantize_float(W, "FP8_E4M3", block_size=32)
    rel = np.abs(W - W_hat) / np.abs(W).reshape(-1, 32).max(axis=1).repeat(32).reshape(W.shape)
    # relative step of E4M3 is 2^-3 at the top binade: error <= half a step of 448 -> 16/448
    assert rel.max() <= 16 / 448 + 1e-6
    assert np.array_equal(F.fake_quantize_float(np.zeros((2, 32), np.float32), "FP8_E4M3", 32), np.zeros((2, 32)))


def test_errors_name_the_parameter():
    with pytest.raises(CourseError, match="fmt='FP7'"):
        F.get_format("FP7")
    with pytest.raises(CourseError, match="NaN"):
        F.quantize_to_code(np.array([1.0, np.nan], np.float32), F.NF4_CODE, block_size=2)
    with pytest.raises(CourseError, match="block_size=3"):
        F.quantize_to_code(np.ones(8, np.float32), F.NF4_CODE, block_size=3)
    with pytest.raises(CourseError, match="dtype"):
        F.quantize_to_code(np.ones(8, np.int32), F.NF4_CODE, block_size=8)
    with pytest.raises(CourseError, match="16 bits"):
        F.format_values("FP32")
    with pytest.raises(CourseError, match="too wide"):
        F.decode([300], "FP8_E4M3")
