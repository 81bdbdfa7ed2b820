"""courseutils.ggml.vecdot: ggml's Q4_0 x Q8_0 integer dot product, against a C-order loop and the float route."""
from __future__ import annotations

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.ggml.blocks import dequantize, quantize
from courseutils.ggml.vecdot import vec_dot_q4_0_q8_0


def _c_loop(w_raw: np.ndarray, x_raw: np.ndarray) -> np.float32:
    """ggml_vec_dot_q4_0_q8_0_generic transcribed line by line (one row)."""
    sumf = np.float32(0)
    for ib in range(x_raw.size // 34):
        bw, bx = w_raw[ib * 18:(ib + 1) * 18], x_raw[ib * 34:(ib + 1) * 34]
        dw, dx = bw[:2].view("<f2")[0].astype(np.float32), bx[:2].view("<f2")[0].astype(np.float32)
        qx = bx[2:].view(np.int8).astype(np.int64)
        sumi = 0
        for j in range(16):
            sumi += ((int(bw[2 + j]) & 0x0F) - 8) * int(qx[j]) + ((int(bw[2 + j]) >> 4) - 8) * int(qx[j + 16])
        sumf = np.float32(sumf + np.float32(np.float32(sumi) * dw) * dx)
    return sumf


def test_matches_the_c_loop_bit_for_bit():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 128)).astype(np.float32)
    x = rng.standard_normal(128).astype(np.float32) * 3
    w_raw, x_raw = quantize(W, "Q4_0"), quantize(x, "Q8_0")
    got = vec_dot_q4_0_q8_0(w_raw, x_raw)
    assert got.shape == (5,) and got.dtype == np.float32
    for r in range(5):
        assert got[r] == _c_loop(w_raw[r], x_raw)


def test_equals_the_dot_of_the_dequantized_vectors():
    """Integer route == float route on the *dequantized* weights and activations (up to float32 rounding)."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((64, 256)).astype(np.float32) * 0.02
    x = rng.standard_normal(256).astype(np.float32)
    w_raw, x_raw = quantize(W, "Q4_0"), quantize(x, "Q8_0")
    ref = dequantize(w_raw, "Q4_0", W.shape).astype(np.float64) @ dequantize(x_raw, "Q8_0", x.shape).astype(np.float64)
    np.testing.assert_allclose(vec_dot_q4_0_q8_0(w_raw, x_raw), ref, rtol=1e-5, atol=1e-6)
    one = vec_dot_q4_0_q8_0(w_raw[0], x_raw)
    assert one.shape == () and one == vec_dot_q4_0_q8_0(w_raw, x_raw)[0]


def test_mismatched_lengths_name_both_sizes():
    with pytest.raises(CourseError, match="bytes"):
        vec_dot_q4_0_q8_0(quantize(np.ones((2, 64), np.float32), "Q4_0"), quantize(np.ones(32, np.float32), "Q8_0"))
