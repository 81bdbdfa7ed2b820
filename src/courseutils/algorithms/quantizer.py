"""The one weight quantizer that RTN, GPTQ and AWQ share: scale and zero per channel or group.

It is lesson 01's linear quantizer (:mod:`courseutils.numerics.linear`), in torch so it runs
where the model runs (CPU or CUDA), split into the two steps the algorithms need apart:

1. :func:`fit_params` finds a scale ``s`` and zero ``z`` for each row of a block of weights
   (one output channel, or one group of ``group_size`` inputs of it):

       zero-point (asymmetric):  s = (beta - alpha) / (2^b - 1),  z = round(-alpha / s),
                                 alpha = min(w, 0), beta = max(w, 0)
       absmax (symmetric):       s = max|w| / (2^(b-1) - 1),      z = 0

   optionally shrinking the range by the ratio ``c`` from a grid that minimises the
   row's squared error (``clip_search``; AWQ's and GPTQ's "mse" option).
2. :func:`quantize_dequantize` rounds with those parameters (round half to even):

       q = clip(round(w / s) + z, q_min, q_max),   w_hat = s * (q - z)

GPTQ calls step 1 once per group, as it reaches the group's first column, and step 2 one
column at a time; RTN (:func:`rtn_quantize`) calls both on the whole matrix at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import CourseError

__all__ = ["QuantSpec", "fit_params", "quantize_dequantize", "rtn_quantize", "group_slices"]

CLIP_GRID = tuple(round(1.0 - 0.05 * i, 2) for i in range(11))  # 1.00, 0.95, ..., 0.50


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize a weight matrix ``W`` of shape (d_out, d_in).

    Attributes:
        bits: 2..8.
        group_size: inputs sharing one (s, z) along a row; ``None`` = one per output channel.
        symmetric: absmax (z = 0, codes -Q..Q) instead of zero-point (codes 0..2^b - 1).
        clip_search: choose a per-row clipping ratio from ``CLIP_GRID`` by squared error.
    """

    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = False
    clip_search: bool = False

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise CourseError(f"bits={self.bits!r} must be an integer from 2 to 8")
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size < 1):
            raise CourseError(f"group_size={self.group_size!r} must be a positive integer or None (per channel)")

    @property
    def q_range(self) -> tuple[int, int]:
        """The smallest and largest integer code."""
        if self.symmetric:
            Q = 2 ** (self.bits - 1) - 1
            return -Q, Q
        return 0, 2**self.bits - 1

    def label(self) -> str:
        """``"W4 g128"`` / ``"W3 per-channel"`` (``sym`` and ``clip`` added when set)."""
        g = f"g{self.group_size}" if self.group_size else "per-channel"
        return " ".join([f"W{self.bits}", g] + (["sym"] if self.symmetric else []) + (["clip"] if self.clip_search else []))


def group_slices(d_in: int, group_size: int | None) -> list[slice]:
    """Column ranges that share parameters; ``group_size`` must divide ``d_in``."""
    if group_size is None:
        return [slice(0, d_in)]
    if d_in % group_size:
        raise CourseError(f"group_size={group_size} does not divide the row length d_in={d_in}; "
                          f"allowed: a divisor of {d_in} (e.g. {', '.join(str(g) for g in (32, 64, 128) if d_in % g == 0) or '1'}) or None")
    return [slice(i, i + group_size) for i in range(0, d_in, group_size)]


def _params_for_range(lo, hi, spec: QuantSpec):
    """(s, z) for ranges [lo, hi] that contain 0; rows of all zeros get s = 1 so 0 stays exact."""
    import torch

    if spec.symmetric:
        Q = 2 ** (spec.bits - 1) - 1
        s = torch.maximum(hi.abs(), lo.abs()) / Q
        z = torch.zeros_like(s)
    else:
        s = (hi - lo) / (2**spec.bits - 1)
        z = torch.zeros_like(s)
        ok = s > 0
        z[ok] = torch.round(-lo[ok] / s[ok])
    s = torch.where(s > 0, s, torch.ones_like(s))
    return s, z


def quantize_dequantize(w, s, z, spec: QuantSpec):
    """``w_hat = s * (clip(round(w / s) + z, q_min, q_max) - z)``; ``s``, ``z`` broadcast against ``w``."""
    import torch

    q_min, q_max = spec.q_range
    q = torch.clamp(torch.round(w / s) + z, q_min, q_max)
    return s * (q - z)


def fit_params(W, spec: QuantSpec, ratio=None):
    """Scale and zero for each row of ``W`` (rows x cols): shapes (rows, 1), (rows, 1).

    With ``spec.clip_search`` each row tries the ratios of ``CLIP_GRID`` (range times c) and
    keeps the one with the smallest ``||w - w_hat||^2``; ratio 1 is plain min/max.
    ``ratio`` (a float in (0, 1], or one per row, shape (rows, 1)) fixes the clipping
    instead: the range is ``[c * alpha, c * beta]``. AWQ chooses it by output error
    (:func:`courseutils.algorithms.awq.clip_search`).
    """
    import torch

    W = W.float()
    lo = torch.clamp(W.min(dim=1, keepdim=True).values, max=0.0)  # (rows, 1): the range holds 0
    hi = torch.clamp(W.max(dim=1, keepdim=True).values, min=0.0)
    if ratio is not None:
        c = torch.as_tensor(ratio, dtype=W.dtype, device=W.device)
        if not bool(((c > 0) & (c <= 1)).all()):
            raise CourseError(f"ratio={ratio!r}: clipping ratios must lie in (0, 1]")
        return _params_for_range(lo * c, hi * c, spec)
    s, z = _params_for_range(lo, hi, spec)
    if not spec.clip_search:
        return s, z
    best = ((quantize_dequantize(W, s, z, spec) - W) ** 2).sum(dim=1, keepdim=True)
    for c in CLIP_GRID[1:]:
        s_c, z_c = _params_for_range(lo * c, hi * c, spec)
        err = ((quantize_dequantize(W, s_c, z_c, spec) - W) ** 2).sum(dim=1, keepdim=True)
        better = err < best
        s, z, best = torch.where(better, s_c, s), torch.where(better, z_c, z), torch.where(better, err, best)
    return s, z


def rtn_quantize(W, spec: QuantSpec, ratio=None):
    """Round-to-nearest: every group of every row quantized on its own (the baseline GPTQ beats).

    Args:
        W: weights (d_out, d_in), any float dtype, any device.
        ratio: optional clipping ratios, one per row and group, shape (d_out, n_groups)
            (see :func:`fit_params`); ``None`` uses the min/max range (or ``spec.clip_search``).
    Returns:
        ``W_hat``, float32, same shape and device.
    """
    import torch

    if not torch.is_tensor(W) or W.ndim != 2:
        raise CourseError(f"W must be a 2-D torch tensor (d_out, d_in); got {type(W).__name__} "
                          f"with shape {tuple(getattr(W, 'shape', ()))}")
    W = W.float()
    W_hat = torch.empty_like(W)
    slices = group_slices(W.shape[1], spec.group_size)
    if ratio is not None and tuple(ratio.shape) != (W.shape[0], len(slices)):
        raise CourseError(f"ratio has shape {tuple(ratio.shape)}; expected (d_out, n_groups) = {(W.shape[0], len(slices))}")
    for g, cols in enumerate(slices):
        s, z = fit_params(W[:, cols], spec, ratio=None if ratio is None else ratio[:, g:g + 1])
        W_hat[:, cols] = quantize_dequantize(W[:, cols], s, z, spec)
    return W_hat
