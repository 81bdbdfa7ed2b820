"""llama.cpp's K-quants (Q2_K ... Q6_K) in numpy: 256-weight super-blocks with quantized scales.

Lesson 02 explains the idea: a super-block of QK_K = 256 weights is cut into sub-blocks
of 32 (Q4_K, Q5_K) or 16 (Q2_K, Q3_K, Q6_K) weights. Each sub-block gets its own scale
(and, for the "_K with min" types Q2_K/Q4_K/Q5_K, its own minimum), found by a small
search that minimizes a weighted squared error. The sub-block scales are then themselves
quantized to 4, 6 or 8 bits against one fp16 super-scale ``d`` (and ``dmin``), so the
scales cost well under a bit per weight:

    w = d * sc_j * q - dmin * m_j     (Q2_K, Q4_K, Q5_K: q >= 0, sc_j, m_j small integers)
    w = d * sc_j * (q - offset)       (Q3_K, Q6_K: symmetric, sc_j signed)

Every function mirrors the C function of ``ggml/src/ggml-quants.c`` named in its
docstring, the path llama.cpp takes when no importance matrix is given (``quantize_qX_K``
calls ``quantize_row_qX_K_ref``). To get the same bytes, sums run in float32 in the
loop order of the C code (``_seqsum``) and rounding uses the same bit trick
(``_nearest_int``). Arrays are vectorized over blocks: ``x`` is (n_blocks, QK_K) float32,
``raw`` is (n_blocks, type_size) uint8.
"""
from __future__ import annotations

import numpy as np

from .fp16 import f16_bytes, f16_value

__all__ = [
    "make_qkx2_quants", "make_qx_quants", "make_q3_quants",
    "quantize_q2_k", "dequantize_q2_k", "quantize_q3_k", "dequantize_q3_k",
    "quantize_q4_k", "dequantize_q4_k", "quantize_q5_k", "dequantize_q5_k",
    "quantize_q6_k", "dequantize_q6_k",
]

QK_K = 256
GROUP_MAX_EPS = np.float32(1e-15)  # below this a group counts as all zero
f32 = np.float32


# ---------------------------------------------------------------- exact-arithmetic helpers
def _nearest_int(v: np.ndarray) -> np.ndarray:
    """Mirrors nearest_int(): add 1.5 * 2^23 so the FPU rounds to an integer (ties to even),
    then read the integer back from the low mantissa bits. Same as rint for |v| < 2^22."""
    with np.errstate(over="ignore", invalid="ignore"):
        bits = (np.asarray(v, np.float32) + f32(12582912.0)).view(np.int32)
    return (bits & 0x007FFFFF) - 0x00400000


def _seqsum(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis in float32, left to right, like ``for (...) s += a[i];``.

    (``a.sum()`` would use pairwise summation and round differently.)
    """
    return np.cumsum(a, axis=-1, dtype=np.float32)[..., -1]


def _signed_absmax(x: np.ndarray) -> np.ndarray:
    """Per row, the entry of largest magnitude with its sign (first one on ties, C's ``>``)."""
    return x[np.arange(x.shape[0]), np.abs(x).argmax(axis=1)]


# ---------------------------------------------------------------- scale searches
def make_qkx2_quants(x: np.ndarray, weights: np.ndarray, nmax: int, rmin: float, rdelta: float,
                     nstep: int, use_mad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search the scale s and minimum m of ``x ~ s * L + m`` (0 <= L <= nmax), per row.

    Mirrors make_qkx2_quants: start from the min/max grid, then try nstep+1 grids with
    ``iscale = (nmax + rmin + rdelta*is) / (max - min)``; for each, round to L and solve the
    weighted least-squares fit of (s, m) in closed form,

        D = Sw*Sll - Sl^2,  s = (Sw*Sxl - Sx*Sl) / D,  m = (Sll*Sx - Sl*Sxl) / D

    (clamping m <= 0), and keep it if the weighted error sum w*(s*L + m - x)^2 (or |.| with
    use_mad) drops. Args: x, weights (rows, n) float32. Returns (L uint8 (rows, n), s, -m).
    """
    mn = np.minimum(x.min(axis=1), 0).astype(np.float32)  # (rows,): "if (min > 0) min = 0"
    mx = x.max(axis=1)
    sum_w = _seqsum(weights)
    sum_x = _seqsum(weights * x)
    flat = mx == mn

    def error(scale, m, L):  # sum w * (scale*L + m - x)^2, in C's order
        diff = scale[:, None] * L + m[:, None] - x
        return _seqsum(weights * (np.abs(diff) if use_mad else diff * diff))

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = f32(nmax) / (mx - mn)
        scale = f32(1) / iscale
        L = np.clip(_nearest_int(iscale[:, None] * (x - mn[:, None])), 0, nmax).astype(np.float32)
        best = error(scale, mn, L)
        for step in range(nstep + 1):
            iscale = (f32(rmin) + f32(rdelta) * f32(step) + f32(nmax)) / (mx - mn)
            Laux = np.clip(_nearest_int(iscale[:, None] * (x - mn[:, None])), 0, nmax).astype(np.float32)
            wl = weights * Laux
            sum_l, sum_l2, sum_xl = _seqsum(wl), _seqsum(wl * Laux), _seqsum(wl * x)
            D = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            pos = this_min > 0
            this_scale = np.where(pos, sum_xl / sum_l2, this_scale).astype(np.float32)
            this_min = np.where(pos, f32(0), this_min).astype(np.float32)
            cur = error(this_scale, this_min, Laux)
            better = (D > 0) & (cur < best) & ~flat
            L[better], best[better] = Laux[better], cur[better]
            scale[better], mn[better] = this_scale[better], this_min[better]
    L[flat], scale[flat] = 0, 0
    return L.astype(np.uint8), scale.astype(np.float32), (-mn).astype(np.float32)


def make_qx_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric scale search for ``x ~ s * L`` with -nmax <= L < nmax, per row.

    Mirrors make_qx_quants with rmse_type = 1 and no importance weights: weights
    w = x^2, start from ``iscale = -nmax / max`` (max = signed largest |x|), then try the
    19 grids ``-(nmax + 0.1*is) / max``, is = -9..9; for each rounding the best scale is
    s = Sum w x L / Sum w L^2 and the fit is better when (Sum w x L)^2 / Sum w L^2 grows.
    Returns (L + nmax as uint8 (rows, n), s (rows,)).
    """
    mx = _signed_absmax(x)
    zero = np.abs(x).max(axis=1) < GROUP_MAX_EPS
    w = x * x

    def fit(iscale):
        l = np.clip(_nearest_int(iscale[:, None] * x), -nmax, nmax - 1).astype(np.float32)
        return l, _seqsum(w * x * l), _seqsum(w * l * l)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        L, sumlx, suml2 = fit(f32(-nmax) / mx)
        scale = np.where(suml2 != 0, sumlx / suml2, f32(0)).astype(np.float32)
        best = scale * sumlx
        for step in range(-9, 10):
            if step == 0:
                continue
            l, sumlx, suml2 = fit(-(f32(nmax) + f32(0.1) * f32(step)) / mx)
            better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
            L[better] = l[better]
            scale[better] = (sumlx / suml2)[better]
            best[better] = scale[better] * sumlx[better]
    L = (L + nmax).astype(np.uint8)
    L[zero], scale[zero] = 0, 0
    return L, scale


def make_q3_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Mirrors make_q3_quants(do_rmse = true): rounding then coordinate descent on each L_i.

    Start from ``L = round(-nmax * x / max)``; then, up to 5 sweeps over i, move L_i to the
    value that is optimal given the others, ``round(x_i * S_ll / S_xl)`` (sums without i),
    and keep it when the fit (S_xl)^2 / S_ll improves (weights w = x^2). A sweep without a
    change leaves the state as it was, so later sweeps are no-ops and running all 5 for
    every row gives C's early-exit result. Returns (L + nmax (rows, n) uint8, s = S_xl/S_ll).
    """
    mx = _signed_absmax(x)
    zero = np.abs(x).max(axis=1) < GROUP_MAX_EPS
    w = x * x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        L = np.clip(_nearest_int((f32(-nmax) / mx)[:, None] * x), -nmax, nmax - 1).astype(np.float32)
        sumlx, suml2 = _seqsum(w * x * L), _seqsum(w * L * L)
        for _ in range(5):
            for i in range(x.shape[1]):
                wi, xi, Li = w[:, i], x[:, i], L[:, i]
                slx = sumlx - wi * xi * Li
                sl2 = suml2 - wi * Li * Li
                new_l = np.clip(_nearest_int(xi * sl2 / slx), -nmax, nmax - 1).astype(np.float32)
                slx_new = slx + wi * xi * new_l
                sl2_new = sl2 + wi * new_l * new_l
                accept = ((slx > 0) & (new_l != Li) & (sl2_new > 0)
                          & (slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new))
                L[:, i] = np.where(accept, new_l, Li)
                sumlx = np.where(accept, slx_new, sumlx)
                suml2 = np.where(accept, sl2_new, suml2)
        scale = np.where(suml2 > 0, sumlx / suml2, f32(0)).astype(np.float32)
    L = (L + nmax).astype(np.uint8)
    L[zero], scale[zero] = 0, 0
    return L, scale


# ---------------------------------------------------------------- bit packing
def _pack_2bit(L: np.ndarray) -> np.ndarray:
    """(n, 256) values 0..3 -> (n, 64) bytes. Per 128-weight half, byte l holds weights
    l, l+32, l+64, l+96 in bits 0-1, 2-3, 4-5, 6-7."""
    L4 = L.reshape(-1, 2, 4, 32).astype(np.uint8)  # [half, shift group k, l]
    return sum(L4[:, :, k, :] << (2 * k) for k in range(4)).astype(np.uint8).reshape(-1, 64)


def _unpack_2bit(qs: np.ndarray) -> np.ndarray:
    q = qs.reshape(-1, 2, 1, 32) >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)
    return (q & 3).reshape(-1, QK_K)


def _pack_bitplane(bits: np.ndarray) -> np.ndarray:
    """(n, 256) 0/1 -> (n, 32) bytes: weight e goes to bit e // 32 of byte e % 32
    (Q3_K's hmask and Q5_K's qh)."""
    b8 = bits.reshape(-1, 8, 32).astype(np.uint8)
    return sum(b8[:, g, :] << g for g in range(8)).astype(np.uint8)


def _unpack_bitplane(plane: np.ndarray) -> np.ndarray:
    return ((plane[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1).reshape(-1, QK_K)


def _pack_nibbles_k(L: np.ndarray) -> np.ndarray:
    """(n, 256) values 0..15 -> (n, 128) bytes: per 64 weights, byte l = L[l] | L[l+32] << 4."""
    L4 = L.reshape(-1, 4, 2, 32).astype(np.uint8)
    return (L4[:, :, 0, :] | (L4[:, :, 1, :] << 4)).reshape(-1, 128)


def _unpack_nibbles_k(qs: np.ndarray) -> np.ndarray:
    q = qs.reshape(-1, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    return (q & 0x0F).reshape(-1, QK_K)


# Q4_K / Q5_K: 8 six-bit scales ls_j and 8 six-bit mins lm_j in 12 bytes
#   byte   0..3 : ls_0..3 (bits 0-5) | high 2 bits of ls_4..7 (bits 6-7)
#   byte   4..7 : lm_0..3 (bits 0-5) | high 2 bits of lm_4..7 (bits 6-7)
#   byte  8..11 : low 4 bits of ls_4..7 (bits 0-3) | low 4 bits of lm_4..7 (bits 4-7)
def _pack_scale_min_k4(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    return np.concatenate([
        ls[:, :4] | ((ls[:, 4:] >> 4) << 6),
        lm[:, :4] | ((lm[:, 4:] >> 4) << 6),
        (ls[:, 4:] & 0x0F) | ((lm[:, 4:] & 0x0F) << 4),
    ], axis=1).astype(np.uint8)


def _unpack_scale_min_k4(sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirrors get_scale_min_k4 for j = 0..7: (n, 12) -> ls (n, 8), lm (n, 8)."""
    ls = np.concatenate([sc[:, 0:4] & 63, (sc[:, 8:12] & 0x0F) | ((sc[:, 0:4] >> 6) << 4)], axis=1)
    lm = np.concatenate([sc[:, 4:8] & 63, (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)], axis=1)
    return ls, lm


# Q3_K: 16 six-bit scales l_j (stored + 32) in 12 bytes
#   byte  0..7 : low 4 bits of l_0..7 (bits 0-3) | low 4 bits of l_8..15 (bits 4-7)
#   byte 8..11 : byte 8 + (j % 4) holds the high 2 bits of l_j at bits 2*(j // 4)
def _pack_scales_q3(l: np.ndarray) -> np.ndarray:
    low = (l[:, :8] & 0x0F) | ((l[:, 8:] & 0x0F) << 4)
    high = sum((l[:, 4 * g:4 * g + 4] >> 4) << (2 * g) for g in range(4))
    return np.concatenate([low, high], axis=1).astype(np.uint8)


def _unpack_scales_q3(sc: np.ndarray) -> np.ndarray:
    """(n, 12) -> (n, 16) signed scales (l_j - 32), as int16."""
    low = np.concatenate([sc[:, :8] & 0x0F, sc[:, :8] >> 4], axis=1)
    j = np.arange(16)
    high = (sc[:, 8 + j % 4] >> (2 * (j // 4)).astype(np.uint8)) & 3
    return (low | (high << 4)).astype(np.int16) - 32


# ---------------------------------------------------------------- Q4_K and Q5_K
def _quantize_k_with_min(x: np.ndarray, nmax: int, rmin: float, nstep: int):
    """Shared body of quantize_row_q4_K_ref / quantize_row_q5_K_ref (8 sub-blocks of 32)."""
    n = x.shape[0]
    xs = x.reshape(n * 8, 32)  # (sub-blocks, 32)
    av_x = np.sqrt(_seqsum(xs * xs) / f32(32))  # RMS of the sub-block
    weights = av_x[:, None] + np.abs(xs)  # importance: larger |x| counts more
    L, scales, mins = make_qkx2_quants(xs, weights, nmax, rmin, 0.1, nstep, use_mad=False)
    scales, mins = scales.reshape(n, 8), mins.reshape(n, 8)
    max_scale = np.maximum(scales.max(axis=1), 0)
    max_min = np.maximum(mins.max(axis=1), 0)
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, f32(63) / max_scale, f32(0)).astype(np.float32)
        inv_min = np.where(max_min > 0, f32(63) / max_min, f32(0)).astype(np.float32)
    ls = np.minimum((_nearest_int(inv_scale[:, None] * scales) & 0xFF), 63).astype(np.uint8)
    lm = np.minimum((_nearest_int(inv_min[:, None] * mins) & 0xFF), 63).astype(np.uint8)
    packed = _pack_scale_min_k4(ls, lm)
    d_raw, dmin_raw = f16_bytes(max_scale / f32(63)), f16_bytes(max_min / f32(63))
    # second pass: re-round every weight against the *quantized* scales it will be decoded with
    sc, m = _unpack_scale_min_k4(packed)
    d = f16_value(d_raw)[:, None] * sc  # (n, 8)
    dm = f16_value(dmin_raw)[:, None] * m
    with np.errstate(divide="ignore", invalid="ignore"):
        l = _nearest_int((x.reshape(n, 8, 32) + dm[..., None]) / d[..., None])
    l = np.clip(l, 0, nmax).astype(np.uint8).reshape(n * 8, 32)
    keep = (d == 0).reshape(-1)  # "if (!d) continue;": the search's L stays
    l[keep] = L[keep]
    return d_raw, dmin_raw, packed, l.reshape(n, QK_K)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q4_K_ref. block_q4_K (144 bytes):
    | d: fp16 | dmin: fp16 | scales[12]: 8 x (6-bit scale, 6-bit min) | qs[128]: 4-bit q |
    w = d * ls_j * q - dmin * lm_j for sub-block j = e // 32."""
    d, dmin, scales, L = _quantize_k_with_min(x, 15, -1.0, 20)
    return np.concatenate([d, dmin, scales, _pack_nibbles_k(L)], axis=1)


def dequantize_q4_k(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q4_K: y = (d * sc) * q - (dmin * m)."""
    d, dmin = f16_value(raw[:, 0:2]), f16_value(raw[:, 2:4])
    sc, m = _unpack_scale_min_k4(raw[:, 4:16])
    q = _unpack_nibbles_k(raw[:, 16:144]).reshape(-1, 8, 32).astype(np.float32)
    d1 = (d[:, None] * sc)[..., None]
    m1 = (dmin[:, None] * m)[..., None]
    return (d1 * q - m1).reshape(-1, QK_K)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q5_K_ref. block_q5_K (176 bytes):
    | d | dmin | scales[12] | qh[32]: 5th bits (bit e//32 of byte e%32) | qs[128]: low nibbles |"""
    d, dmin, scales, L = _quantize_k_with_min(x, 31, -0.5, 15)
    return np.concatenate([d, dmin, scales, _pack_bitplane(L >> 4), _pack_nibbles_k(L & 0x0F)], axis=1)


def dequantize_q5_k(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q5_K: y = (d * sc) * (q_low + 16 * q_high) - (dmin * m)."""
    d, dmin = f16_value(raw[:, 0:2]), f16_value(raw[:, 2:4])
    sc, m = _unpack_scale_min_k4(raw[:, 4:16])
    q = _unpack_nibbles_k(raw[:, 48:176]) | (_unpack_bitplane(raw[:, 16:48]) << 4)
    q = q.reshape(-1, 8, 32).astype(np.float32)
    return ((d[:, None] * sc)[..., None] * q - (dmin[:, None] * m)[..., None]).reshape(-1, QK_K)


# ---------------------------------------------------------------- Q2_K
def quantize_q2_k(x: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q2_K_ref. block_q2_K (84 bytes):
    | scales[16]: scale (bits 0-3) and min (bits 4-7) per 16 weights | qs[64]: 2-bit q | d | dmin |
    Scale search: make_qkx2_quants with weights |x| and absolute (not squared) error."""
    n = x.shape[0]
    xs = x.reshape(n * 16, 16)
    L, scales, mins = make_qkx2_quants(xs, np.abs(xs), 3, -0.5, 0.1, 15, use_mad=True)
    scales, mins = scales.reshape(n, 16), mins.reshape(n, 16)
    max_scale = np.maximum(scales.max(axis=1), 0)
    max_min = np.maximum(mins.max(axis=1), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.where((max_scale > 0)[:, None], _nearest_int((f32(15) / max_scale)[:, None] * scales), 0)
        lm = np.where((max_min > 0)[:, None], _nearest_int((f32(15) / max_min)[:, None] * mins), 0)
    packed = ((ls | (lm << 4)) & 0xFF).astype(np.uint8)
    d_raw = f16_bytes(np.where(max_scale > 0, max_scale / f32(15), f32(0)))
    dmin_raw = f16_bytes(np.where(max_min > 0, max_min / f32(15), f32(0)))
    d = f16_value(d_raw)[:, None] * (packed & 0x0F)  # (n, 16)
    dm = f16_value(dmin_raw)[:, None] * (packed >> 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        l = _nearest_int((x.reshape(n, 16, 16) + dm[..., None]) / d[..., None])
    l = np.clip(l, 0, 3).astype(np.uint8).reshape(n * 16, 16)
    keep = (d == 0).reshape(-1)
    l[keep] = L[keep]
    return np.concatenate([packed, _pack_2bit(l.reshape(n, QK_K)), d_raw, dmin_raw], axis=1)


def dequantize_q2_k(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q2_K: y = (d * sc) * q - (dmin * m), 16 weights per (sc, m)."""
    sc = raw[:, 0:16]
    d, dmin = f16_value(raw[:, 80:82]), f16_value(raw[:, 82:84])
    q = _unpack_2bit(raw[:, 16:80]).reshape(-1, 16, 16).astype(np.float32)
    dl = (d[:, None] * (sc & 0x0F))[..., None]
    ml = (dmin[:, None] * (sc >> 4))[..., None]
    return (dl * q - ml).reshape(-1, QK_K)


# ---------------------------------------------------------------- Q3_K
def quantize_q3_k(x: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q3_K_ref. block_q3_K (110 bytes):
    | hmask[32]: 3rd bit of q | qs[64]: low 2 bits | scales[12]: 16 six-bit scales | d: fp16 |
    w = d * (l_j - 32) * (q - 4), q = 0..7, 16 weights per scale."""
    n = x.shape[0]
    L, scales = make_q3_quants(x.reshape(n * 16, 16), 4)
    scales = scales.reshape(n, 16)
    max_scale = _signed_absmax(scales)
    has = max_scale != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = f32(-32) / max_scale
        l = np.clip(_nearest_int(iscale[:, None] * scales), -32, 31) + 32
        d_raw = f16_bytes(np.where(has, f32(1) / iscale, f32(0)))
    packed = np.where(has[:, None], _pack_scales_q3(l.astype(np.uint8)), 0).astype(np.uint8)
    d = f16_value(d_raw)[:, None] * _unpack_scales_q3(packed)  # (n, 16)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(_nearest_int(x.reshape(n, 16, 16) / d[..., None]), -4, 3) + 4
    q = q.astype(np.uint8).reshape(n * 16, 16)
    keep = (d == 0).reshape(-1)
    q[keep] = L[keep]
    q = q.reshape(n, QK_K)
    high = q > 3
    return np.concatenate([_pack_bitplane(high), _pack_2bit(q - 4 * high), packed, d_raw], axis=1)


def dequantize_q3_k(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q3_K: y = (d * (l_j - 32)) * (q_low - (hmask bit ? 0 : 4))."""
    d = f16_value(raw[:, 108:110])
    sc = _unpack_scales_q3(raw[:, 96:108])
    q = _unpack_2bit(raw[:, 32:96]).astype(np.int16) - 4 * (1 - _unpack_bitplane(raw[:, 0:32]).astype(np.int16))
    dl = (d[:, None] * sc.astype(np.float32))[..., None]
    return (dl * q.reshape(-1, 16, 16).astype(np.float32)).reshape(-1, QK_K)


# ---------------------------------------------------------------- Q6_K
# block_q6_K, 210 bytes, 256 weights q_e = 0..63 (w_e = d * sc[e // 16] * (q_e - 32)):
#   bytes   0..127 ql : low 4 bits of q       bytes 192..207 scales: 16 x int8, one per 16 weights
#   bytes 128..191 qh : high 2 bits of q      bytes 208..209 d: fp16
# Each 128-weight half h (weights 128h + l + 32k, l = 0..31, k = 0..3) owns ql[64h : 64h+64]
# and qh[32h : 32h+32]:
#           bits 7..4          bits 3..0                 bits 7-6  5-4  3-2  1-0
#   ql[l]    : low(q[l+64])  | low(q[l])          qh[l]:  k=3  k=2  k=1  k=0   (high 2 bits
#   ql[l+32] : low(q[l+96])  | low(q[l+32])                                    of q[l+32k])
def _pack_q6(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 256) values 0..63 -> ql (n, 128), qh (n, 64). Per 128-weight half, weight
    l + 32k (k = 0..3) puts its low nibble in ql[l + 32*(k % 2)] at bit 4*(k // 2) and its
    top 2 bits in qh[l] at bit 2k."""
    L4 = L.reshape(-1, 2, 4, 32).astype(np.uint8)
    low = L4 & 0x0F
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)], axis=2)
    qh = sum((L4[:, :, k] >> 4) << (2 * k) for k in range(4)).astype(np.uint8)
    return ql.reshape(-1, 128), qh.reshape(-1, 64)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q6_K_ref. block_q6_K (210 bytes):
    | ql[128]: low 4 bits | qh[64]: high 2 bits | scales[16]: int8 | d: fp16 |
    w = d * scale_j * (q - 32), q = 0..63, 16 weights per scale."""
    n = x.shape[0]
    L, scales = make_qx_quants(x.reshape(n * 16, 16), 32)
    scales = scales.reshape(n, 16)
    max_scale = _signed_absmax(scales)
    zero_block = np.abs(max_scale) < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = f32(-128) / max_scale
        d_raw = f16_bytes(f32(1) / iscale)
        sc = np.minimum(_nearest_int(iscale[:, None] * scales), 127).astype(np.int8)
        d = f16_value(d_raw)[:, None] * sc  # (n, 16)
        q = np.clip(_nearest_int(x.reshape(n, 16, 16) / d[..., None]), -32, 31) + 32
    q = q.astype(np.uint8).reshape(n * 16, 16)
    keep = (d == 0).reshape(-1)
    q[keep] = L[keep]
    ql, qh = _pack_q6(q.reshape(n, QK_K))
    raw = np.concatenate([ql, qh, sc.view(np.uint8), d_raw], axis=1)
    raw[zero_block] = 0  # all-zero super-block: memset(0)
    return raw


def dequantize_q6_k(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q6_K: y = (d * scale_j) * (q - 32), byte layout in the diagram above."""
    ql = raw[:, 0:128].reshape(-1, 2, 2, 32)  # [half, which 32 bytes, l]
    qh = raw[:, 128:192].reshape(-1, 2, 1, 32)
    sc = raw[:, 192:208].view(np.int8).astype(np.float32)
    d = f16_value(raw[:, 208:210])
    low = np.stack([ql[:, :, 0] & 0x0F, ql[:, :, 1] & 0x0F, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], axis=2)
    high = (qh >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)) & 3
    q = (low | (high << 4)).astype(np.float32).reshape(-1, 16, 16) - 32
    return ((d[:, None] * sc)[..., None] * q).reshape(-1, QK_K)
