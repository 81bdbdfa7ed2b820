"""Scalar code books fitted to data: the Lloyd–Max quantizer (1-D k-means), beside NF4.

A code book ``c_1 < ... < c_K`` stores each value as the index of its nearest level. For a
fixed set of values ``x`` (with weights ``a``; all 1 by default) the squared error

    D(c) = sum_i a_i min_k (x_i - c_k)^2

is minimised by the Lloyd–Max conditions (Lloyd 1957/1982, Max 1960), which hold together
at every local minimum:

    thresholds  t_k = (c_k + c_{k+1}) / 2                 (nearest-neighbour cells)
    levels      c_k = sum_{t_{k-1} < x_i <= t_k} a_i x_i / sum a_i   (each level is its cell's mean)

Lloyd's algorithm alternates the two; neither step can increase D, so started from any code
book (NF4, say) it ends with an error no larger than that code book's. For N(0, 1) at 2 bits it
converges to Max's published levels +-0.4528, +-1.510 (tests/test_codebooks.py).

NF4 (QLoRA) puts *equal probability mass* between neighbouring levels instead: that is the
maximum-entropy choice for the index, not the minimum-MSE one (lesson 01 measures the gap).

With one absmax scale per block (``s_b = max |w|`` over block ``b``, ``y = w / s_b``),
``sum (w - s_b c_k)^2 = sum s_b^2 (y - c_k)^2``, so the code book that minimises the error of
the *weights* is the Lloyd–Max code book of the normalised values ``y`` with weights ``s_b^2``:
:func:`fit_block_codebook`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError

__all__ = ["LloydMax", "lloyd_max", "block_normalize", "fake_quantize_codebook", "fit_block_codebook"]


@dataclass(frozen=True)
class LloydMax:
    """Result of :func:`lloyd_max`: the levels, the (weighted) mean squared error, iterations used."""

    code: np.ndarray  # (K,) sorted levels
    mse: float  # sum a_i (x_i - c(x_i))^2 / sum a_i at ``code``
    n_iter: int
    converged: bool


def _check_x(x, weights) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise CourseError(f"x must be a non-empty array of finite values; got {x.size} values")
    if weights is None:
        a = np.ones_like(x)
    else:
        a = np.asarray(weights, dtype=np.float64).reshape(-1)
        if a.shape != x.shape or not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
            raise CourseError(f"weights must be {x.size} finite non-negative numbers with a positive sum; "
                              f"got shape {a.shape}")
    return x, a


def lloyd_max(x, n_levels: int = 16, init=None, weights=None, max_iter: int = 2000,
              tol: float = 1e-10) -> LloydMax:
    """Fit the minimum-MSE ``n_levels``-level scalar quantizer to ``x`` with Lloyd's algorithm.

    Alternates the two Lloyd–Max conditions of the module docstring until no level moves
    by more than ``tol``. The values are sorted once; each iteration then needs only the
    cumulative sums of ``a`` and ``a x`` at the thresholds, so it costs O(K log n).

    Args:
        x: values, any shape (flattened).
        n_levels: K >= 2 (16 for a 4-bit code).
        init: starting levels, shape (K,); default the equal-mass quantiles of ``x``
            (``(k + 1/2) / K``), i.e. an NF4-like start.
        weights: ``a_i >= 0`` per value (default 1).
    Returns:
        :class:`LloydMax`. An empty cell keeps its level (it cannot raise the error).
    """
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or n_levels < 2:
        raise CourseError(f"n_levels={n_levels!r}; allowed: an integer >= 2")
    x, a = _check_x(x, weights)
    order = np.argsort(x, kind="stable")
    xs, as_ = x[order], a[order]
    cw = np.concatenate([[0.0], np.cumsum(as_)])  # (n+1,) prefix sums of a
    cx = np.concatenate([[0.0], np.cumsum(as_ * xs)])  # (n+1,) prefix sums of a x
    if init is None:
        qs = (np.arange(n_levels) + 0.5) / n_levels
        c = np.interp(qs, cw[1:] / cw[-1], xs)
    else:
        c = np.asarray(init, dtype=np.float64).reshape(-1)
        if c.size != n_levels or not np.all(np.isfinite(c)):
            raise CourseError(f"init has {c.size} levels; expected {n_levels} finite values")
    c = np.sort(c)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        t = (c[1:] + c[:-1]) / 2  # (K-1,) thresholds
        edges = np.concatenate([[0], np.searchsorted(xs, t, side="right"), [xs.size]])  # cell k: xs[e_k:e_k+1]
        w_cell = cw[edges[1:]] - cw[edges[:-1]]  # (K,)
        x_cell = cx[edges[1:]] - cx[edges[:-1]]
        new = np.where(w_cell > 0, x_cell / np.where(w_cell > 0, w_cell, 1.0), c)
        new = np.sort(new)
        moved = np.max(np.abs(new - c))
        c = new
        if moved <= tol:
            converged = True
            break
    return LloydMax(code=c, mse=_weighted_mse(xs, as_, c), n_iter=it, converged=converged)


def _nearest(y: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Index of the nearest level (a tie goes to the lower one, as ``quantize_to_code``)."""
    mids = (code[1:] + code[:-1]) / 2
    return np.searchsorted(mids, y)


def _weighted_mse(x: np.ndarray, a: np.ndarray, code: np.ndarray) -> float:
    err = x - code[_nearest(x, code)]
    return float(np.sum(a * err * err) / np.sum(a))


def block_normalize(W, block_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``W`` (flattened) into blocks and divide each by its absmax.

    Returns ``(y, s)``: ``y`` (n_blocks, block_size) in [-1, 1] and ``s`` (n_blocks,) the
    block absmaxes (a block of zeros gets s = 0 and y = 0).
    """
    W = np.asarray(W.detach().float().cpu().numpy() if hasattr(W, "detach") else W, dtype=np.float64)
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1 \
            or W.size % block_size:
        raise CourseError(f"block_size={block_size!r} must be a positive integer dividing W.size={W.size}")
    blocks = W.reshape(-1, block_size)
    s = np.abs(blocks).max(axis=1)
    y = np.divide(blocks, s[:, None], out=np.zeros_like(blocks), where=s[:, None] > 0)
    return y, s


def fake_quantize_codebook(W, code, block_size: int = 64) -> np.ndarray:
    """``W_hat = s_b * c[nearest(w / s_b)]`` with ``s_b`` the block absmax (float32, W's shape).

    For a code book whose largest magnitude is 1 (NF4) this is exactly
    :func:`courseutils.numerics.formats.quantize_to_code` followed by ``dequantize_code``;
    unlike those it does not stretch the code book to reach the block maximum.
    """
    code = np.asarray(code, dtype=np.float64)
    if code.ndim != 1 or code.size < 2 or np.any(np.diff(code) <= 0):
        raise CourseError(f"code must be a sorted 1-D array of >= 2 distinct levels, got shape {code.shape}")
    shape = np.shape(W)
    y, s = block_normalize(W, block_size)
    return (code[_nearest(y, code)] * s[:, None]).astype(np.float32).reshape(shape)


def fit_block_codebook(matrices, n_levels: int = 16, block_size: int = 64, init=None) -> LloydMax:
    """The Lloyd–Max code book for absmax-scaled blocks: minimum squared error of the *weights*.

    Fits :func:`lloyd_max` to the normalised values of all ``matrices`` with weights
    ``s_b^2`` (module docstring), so ``fake_quantize_codebook(W, result.code)`` has the
    smallest total squared error a fixed ``n_levels`` code book can reach (locally).
    ``result.mse`` is in normalised units; compare code books on ``W`` itself.
    """
    ys, ws = [], []
    for W in (matrices.values() if isinstance(matrices, dict) else matrices):
        y, s = block_normalize(W, block_size)
        ys.append(y.reshape(-1))
        ws.append(np.repeat(s * s, block_size))
    if not ys:
        raise CourseError("matrices is empty; give at least one weight matrix")
    return lloyd_max(np.concatenate(ys), n_levels, init=init, weights=np.concatenate(ws))
