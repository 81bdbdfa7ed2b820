"""Linear (uniform) integer quantization: absmax and zero-point, per tensor / channel / group.

Lesson 01 derives these. A ``b``-bit linear quantizer maps a real weight ``w`` to an
integer ``q`` on an evenly spaced grid with step (scale) ``s``:

    absmax (symmetric):     q = clip(round(w / s), -Q, Q),          Q = 2^(b-1) - 1,
                            s = alpha / Q,  alpha = max|w| (times clip)
                            w_hat = s * q
    zero-point (asymmetric): q = clip(round(w / s) + z, 0, 2^b - 1),
                            s = (beta - alpha) / (2^b - 1),  alpha = min(w, 0), beta = max(w, 0)
                            z = round(-alpha / s),   w_hat = s * (q - z)

Inside the clipping range every value is within half a step of its reconstruction,
``|w - w_hat| <= s / 2``; outside it the error is the distance to the range's end.
The absmax grid is symmetric and wastes one code (-2^(b-1) is never used) but needs no
zero point; the zero-point grid fits lopsided ranges such as post-ReLU values.

Granularity decides which weights share one (s, z): the whole tensor, each output
channel (a row of ``W``, shape (out_features, in_features)), or each group of
``group_size`` consecutive inputs within a row (llama.cpp's blocks and GPTQ's "g128").
``round`` is round-half-to-even (numpy's ``rint``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError

__all__ = [
    "SCHEMES",
    "GRANULARITIES",
    "LinearQuant",
    "quantize_linear",
    "dequantize_linear",
    "fake_quantize",
    "error_metrics",
    "ClipSearch",
    "clip_search",
]

SCHEMES = ("absmax", "zeropoint")
GRANULARITIES = ("tensor", "channel", "group")


@dataclass(frozen=True)
class LinearQuant:
    """The result of :func:`quantize_linear`: integer codes and the parameters to decode them.

    ``q`` has the shape of ``W``; ``s`` and ``z`` have one entry per tensor / row / group:
    shape () for ``tensor``, (rows, 1) for ``channel``, (rows, n_groups) for ``group``.
    """

    q: np.ndarray  # integers, W's shape (int16 so 8-bit zero-point codes 0..255 fit)
    s: np.ndarray  # float32 scales
    z: np.ndarray  # int16 zero points (all 0 for absmax)
    bits: int
    scheme: str
    granularity: str
    group_size: int | None

    @property
    def n_params(self) -> int:
        """How many (s, z) pairs the quantized tensor carries."""
        return int(np.size(self.s))


def _check_W(W, granularity: str) -> np.ndarray:
    if hasattr(W, "detach"):  # a torch tensor
        W = W.detach().float().cpu().numpy()
    if not isinstance(W, np.ndarray):
        raise CourseError(f"W must be a numpy array or torch tensor, got {type(W).__name__}")
    if W.dtype.kind != "f":
        raise CourseError(f"W has dtype {W.dtype}; allowed: float16, float32, float64")
    if W.size == 0:
        raise CourseError(f"W has shape {W.shape} with no elements")
    if granularity in ("channel", "group") and W.ndim != 2:
        raise CourseError(f"W has shape {W.shape}; granularity={granularity!r} needs a 2-D (out, in) matrix")
    if not np.all(np.isfinite(W)):
        raise CourseError("W contains NaN or inf; quantization needs finite weights")
    return W.astype(np.float32)


def _check_args(bits: int, scheme: str, granularity: str, group_size, clip: float) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise CourseError(f"bits={bits!r}; allowed: integers 2..8")
    if scheme not in SCHEMES:
        raise CourseError(f"scheme={scheme!r}; allowed: {SCHEMES}")
    if granularity not in GRANULARITIES:
        raise CourseError(f"granularity={granularity!r}; allowed: {GRANULARITIES}")
    if granularity == "group":
        if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
            raise CourseError(f"group_size={group_size!r}; granularity='group' needs a positive integer")
    elif group_size is not None:
        raise CourseError(f"group_size={group_size!r} is only used with granularity='group' (got {granularity!r})")
    if not (isinstance(clip, (int, float, np.floating)) and 0 < clip <= 1):
        raise CourseError(f"clip={clip!r}; allowed: a fraction in (0, 1]")


def _grouped(W: np.ndarray, granularity: str, group_size: int | None) -> np.ndarray:
    """View ``W`` as (n_sets, set_size): the rows of this matrix share one (s, z)."""
    if granularity == "tensor":
        return W.reshape(1, -1)
    if granularity == "channel":
        return W  # (out, in)
    rows, cols = W.shape
    if cols % group_size:
        allowed = [g for g in range(1, cols + 1) if cols % g == 0]
        raise CourseError(f"group_size={group_size} does not divide the row length {cols}; allowed: {allowed}")
    return W.reshape(rows * (cols // group_size), group_size)


def _param_shape(W: np.ndarray, granularity: str, group_size: int | None) -> tuple[int, ...]:
    if granularity == "tensor":
        return ()
    if granularity == "channel":
        return (W.shape[0], 1)
    return (W.shape[0], W.shape[1] // group_size)


def _div(a: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``a / s``, and 0 where ``s == 0`` (a set of all-zero weights keeps q = 0)."""
    s = np.broadcast_to(s, np.broadcast_shapes(np.shape(a), np.shape(s)))
    return np.divide(a, s, out=np.zeros(s.shape), where=s > 0)


def quantize_linear(W, bits: int = 8, scheme: str = "absmax", granularity: str = "tensor",
                    group_size: int | None = None, clip: float = 1.0) -> LinearQuant:
    """Quantize ``W`` to ``bits``-bit integers with the module docstring's equations.

    Args:
        W: weights, any shape for ``tensor``; (out_features, in_features) otherwise.
        bits: 2..8.
        scheme: ``absmax`` (symmetric, z = 0) or ``zeropoint`` (asymmetric).
        granularity: ``tensor``, ``channel`` (one scale per row) or ``group``.
        group_size: inputs per group along a row (must divide the row length); only for ``group``.
        clip: shrink the range to this fraction of the observed one (1 = no clipping).
    Returns:
        :class:`LinearQuant` with ``q`` (W's shape), ``s`` and ``z``.
    """
    _check_args(bits, scheme, granularity, group_size, clip)
    W = _check_W(W, granularity)
    G = _grouped(W, granularity, group_size).astype(np.float64)  # (n_sets, set_size)
    if scheme == "absmax":
        Q = 2 ** (bits - 1) - 1
        alpha = np.abs(G).max(axis=1, keepdims=True) * clip  # (n_sets, 1)
        s = alpha / Q
        q = np.clip(np.rint(_div(G, s)), -Q, Q)
        z = np.zeros_like(s)
    else:
        qmax = 2**bits - 1
        alpha = np.minimum(G.min(axis=1, keepdims=True), 0) * clip  # range always holds 0,
        beta = np.maximum(G.max(axis=1, keepdims=True), 0) * clip  # so w = 0 is exact
        s = (beta - alpha) / qmax
        z = np.clip(np.rint(_div(-alpha, s)), 0, qmax)
        q = np.clip(np.rint(_div(G, s)) + z, 0, qmax)
    shape = _param_shape(W, granularity, group_size)
    return LinearQuant(
        q=q.reshape(W.shape).astype(np.int16),
        s=s.astype(np.float32).reshape(shape),
        z=z.astype(np.int16).reshape(shape),
        bits=int(bits), scheme=scheme, granularity=granularity, group_size=group_size,
    )


def dequantize_linear(qt: LinearQuant) -> np.ndarray:
    """Reconstruct ``W_hat = s * (q - z)`` (float32, the shape of the original ``W``)."""
    if not isinstance(qt, LinearQuant):
        raise CourseError(f"qt must be a LinearQuant from quantize_linear, got {type(qt).__name__}")
    if qt.granularity == "tensor":
        qg = qt.q.reshape(1, -1).astype(np.float64)
    elif qt.granularity == "channel":
        qg = qt.q.astype(np.float64)
    else:
        qg = qt.q.reshape(-1, qt.group_size).astype(np.float64)
    s = qt.s.reshape(-1, 1).astype(np.float64)
    z = qt.z.reshape(-1, 1).astype(np.float64)
    return (s * (qg - z)).astype(np.float32).reshape(qt.q.shape)


def fake_quantize(W, bits: int = 8, scheme: str = "absmax", granularity: str = "tensor",
                  group_size: int | None = None, clip: float = 1.0) -> np.ndarray:
    """Quantize then dequantize: the weights a quantized model effectively computes with."""
    return dequantize_linear(quantize_linear(W, bits, scheme, granularity, group_size, clip))


def error_metrics(W, W_hat) -> dict[str, float]:
    """Quantization error of ``W_hat`` against ``W``.

    ``mse = mean((W - W_hat)^2)``, ``max_abs = max|W - W_hat|`` and the signal-to-
    quantization-noise ratio ``sqnr_db = 10 log10(sum W^2 / sum (W - W_hat)^2)``
    (``inf`` when the reconstruction is exact).
    """
    W = np.asarray(W.detach().float().cpu().numpy() if hasattr(W, "detach") else W, dtype=np.float64)
    W_hat = np.asarray(W_hat.detach().float().cpu().numpy() if hasattr(W_hat, "detach") else W_hat,
                       dtype=np.float64)
    if W.shape != W_hat.shape:
        raise CourseError(f"W has shape {W.shape} but W_hat has shape {W_hat.shape}; they must match")
    if W.size == 0:
        raise CourseError("W is empty")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(W_hat))):
        raise CourseError("W or W_hat contains NaN or inf")
    err = W - W_hat
    noise = float(np.sum(err**2))
    signal = float(np.sum(W**2))
    sqnr = float("inf") if noise == 0 else 10 * np.log10(signal / noise) if signal > 0 else float("-inf")
    return {"mse": float(np.mean(err**2)), "max_abs": float(np.max(np.abs(err))), "sqnr_db": float(sqnr)}


@dataclass(frozen=True)
class ClipSearch:
    """Result of :func:`clip_search`: the error at each clipping ratio and the best one."""

    ratios: np.ndarray  # (R,) clipping ratios tried, ascending, the last one 1.0
    mse: np.ndarray  # (R,) mean squared error of W with every set clipped at ratios[r]
    best_ratio: float  # argmin of mse: one ratio for the whole tensor
    best_mse: float
    noclip_mse: float  # mse at ratio 1.0: plain absmax / min-max
    set_ratios: np.ndarray  # (n_sets,) each set's own best ratio (per-group search, as AWQ's clip search)
    set_mse: float  # mse with each set clipped at its own best ratio

    @property
    def saving(self) -> float:
        """Fraction of the unclipped squared error the best single ratio removes: 1 - best/noclip."""
        return 1.0 - self.best_mse / self.noclip_mse if self.noclip_mse > 0 else 0.0


def clip_search(W, bits: int = 4, scheme: str = "absmax", granularity: str = "group",
                group_size: int | None = 64, ratios=None) -> ClipSearch:
    """Grid search of the clipping ratio ``c`` that minimises the quantization MSE of ``W``.

    Clipping shrinks each set's range to ``c`` times its observed range (``alpha = c max|w|``
    for absmax): the step ``s`` shrinks by ``c``, so the rounding error of the many small
    weights (about ``s^2/12`` each) falls, while the few weights beyond the range now pay
    the distance to its end. The minimum of

        MSE(c) = mean_i (w_i - Q_c(w_i))^2

    is where the two balance (lesson 01, section 3; AWQ's and OmniQuant's clipping search
    minimise the same kind of error, per group). ``c = 1`` is plain absmax; ``1.0`` is
    always on the grid, so neither result is ever worse than no clipping.

    Args:
        W, bits, scheme, granularity, group_size: as :func:`quantize_linear`.
        ratios: ratios in (0, 1] to try; default 0.30, 0.32, ..., 1.00.
    Returns:
        :class:`ClipSearch` with one best ratio for the tensor and one per set.
    """
    if ratios is None:
        ratios = np.round(np.arange(0.30, 1.0001, 0.02), 10)
    ratios = np.unique(np.append(np.asarray(ratios, dtype=np.float64).reshape(-1), 1.0))
    if ratios.size == 0 or ratios[0] <= 0 or ratios[-1] > 1:
        raise CourseError(f"ratios must lie in (0, 1]; got {ratios.min():g} .. {ratios.max():g}")
    W32 = _check_W(W, granularity)
    G = _grouped(W32, granularity, group_size).astype(np.float64)  # (n_sets, set_size)
    err = np.empty((ratios.size, G.shape[0]))  # (R, n_sets) squared error per set
    for r, c in enumerate(ratios):
        What = fake_quantize(W32, bits, scheme, granularity, group_size, clip=float(c))
        err[r] = ((G - _grouped(What, granularity, group_size)) ** 2).sum(axis=1)
    n = W32.size
    mse = err.sum(axis=1) / n
    best = int(np.argmin(mse))
    per_set = np.argmin(err, axis=0)
    return ClipSearch(ratios=ratios, mse=mse, best_ratio=float(ratios[best]), best_mse=float(mse[best]),
                      noclip_mse=float(mse[-1]), set_ratios=ratios[per_set],
                      set_mse=float(err[per_set, np.arange(G.shape[0])].sum() / n))
