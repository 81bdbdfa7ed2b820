"""Paired bootstrap confidence intervals: every comparison the course shows, with its uncertainty.

Two quantizations of a model are scored on the *same* text, so their per-token losses are
paired: a hard chunk is hard for both. The paired bootstrap keeps that pairing. It draws
the evaluation units (chunks, by default, or tokens) with replacement, recomputes the
statistic for both models on the same draw, and reads the interval off the spread of the
``n_boot`` replicates (the percentile interval; Efron & Tibshirani 1993, ch. 13).

Why chunks and not tokens: neighbouring tokens of one chunk share context, so they are not
independent draws; resampling whole chunks respects that and gives the wider, honest
interval. Token-level resampling is offered for comparison (lesson 03 shows both).

- :func:`ppl_diff_ci`: relative perplexity change, ``PPL_q / PPL_ref - 1``.
- :func:`mean_ci`: a mean over units, e.g. the mean KLD against the reference.
- :func:`spearman_ci`: a rank correlation, resampling the ranked items (pairs).
- :func:`spearman_diff_ci`: the difference of two scores' rank correlations with the same truth,
  paired (both recomputed on the same resampled items): "does score a rank better than b?".
- :func:`db_gain_ci`: how many dB less squared error one quantizer makes than another,
  ``10 log10(sum err_a / sum err_b)``, resampling paired units (matrices, rows, tokens).
- :class:`Interval` carries the estimate, the bounds, and the wording a lesson prints
  (:meth:`Interval.verdict`): "indistinguishable" when the interval covers zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError

__all__ = ["Interval", "ppl_diff_ci", "mean_ci", "spearman_ci", "spearman_diff_ci", "db_gain_ci",
           "resample_indices"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n_units: int = 0
    n_boot: int = 0
    unit: str = "chunk"

    def covers(self, value: float = 0.0) -> bool:
        """True when ``value`` lies inside the interval (bounds included)."""
        return self.low <= value <= self.high

    def format(self, scale: float = 1.0, digits: int = 2, suffix: str = "", sign: bool = True) -> str:
        """``"+1.85 % [+0.52, +3.21]"`` style text (``scale=100, suffix=' %'`` for percentages)."""
        f = f"{{:{'+' if sign else ''}.{digits}f}}"
        return (f"{f.format(self.estimate * scale)}{suffix} "
                f"[{f.format(self.low * scale)}, {f.format(self.high * scale)}]")

    def verdict(self, what: str, than: str, higher: str = "higher", lower: str = "lower",
                null: float = 0.0) -> str:
        """A sentence computed from the interval, e.g. "Q8_0's perplexity is indistinguishable from F16's".

        ``higher``/``lower`` name the two directions ("worse"/"better"); the sentence says
        "indistinguishable" when the interval covers ``null``.
        """
        level = f"{100 * self.level:.0f} %"
        if self.covers(null):
            return f"{what} is indistinguishable from {than} (the {level} interval covers {null:g})"
        direction = higher if self.low > null else lower
        return f"{what} is {direction} than {than} (the {level} interval excludes {null:g})"

    def __str__(self) -> str:
        return self.format(digits=4)


def _check_level(level: float, n_boot: int) -> None:
    if not (isinstance(level, float) and 0.5 <= level < 1.0):
        raise CourseError(f"level={level!r} must be a float in [0.5, 1), e.g. 0.95")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise CourseError(f"n_boot={n_boot!r} must be an integer of at least 100")


def _as_units(name: str, values, unit: str) -> np.ndarray:
    """Per-unit arrays: ``(n_chunks, tokens_per_chunk)`` for chunks; flattened to ``(n, 1)`` for tokens."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise CourseError(f"{name} must be a non-empty 1-D (units) or 2-D (chunks, tokens) array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CourseError(f"{name} contains NaN or infinite values")
    if unit == "token":
        return arr.reshape(-1, 1)
    if unit == "chunk":
        return arr.reshape(arr.shape[0], -1)
    raise CourseError(f"unit={unit!r} must be 'chunk' or 'token'")


def resample_indices(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_units)`` unit indices drawn with replacement (one row per replicate)."""
    return np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))


def _percentile(replicates: np.ndarray, estimate: float, level: float, n_units: int, n_boot: int,
                unit: str) -> Interval:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return Interval(float(estimate), float(low), float(high), level, n_units, n_boot, unit)


def ppl_diff_ci(nll_ref, nll_q, unit: str = "chunk", level: float = 0.95, n_boot: int = 2000,
                seed: int = 0) -> Interval:
    """Paired bootstrap interval of the relative perplexity change ``PPL_q / PPL_ref - 1``.

    PPL = exp(mean NLL) over the scored tokens (lesson 03, eq. 1), so the ratio is
    ``exp(mean(nll_q) - mean(nll_ref))`` and each replicate recomputes both means on the same
    resampled chunks (or tokens).

    Args:
        nll_ref, nll_q: per-token negative log-likelihoods of the reference and the quantized
            model on the same tokens, ``(n_chunks, tokens_per_chunk)`` (or 1-D with ``unit="token"``).
    """
    _check_level(level, n_boot)
    a, b = _as_units("nll_ref", nll_ref, unit), _as_units("nll_q", nll_q, unit)
    if a.shape != b.shape:
        raise CourseError(f"nll_ref and nll_q must be paired (same shape); got {a.shape} and {b.shape}")
    d = (b - a).sum(axis=1)  # (n_units,) summed NLL difference per unit
    counts = np.full(len(d), a.shape[1], dtype=np.float64)
    idx = resample_indices(len(d), n_boot, seed)
    replicates = np.expm1(d[idx].sum(axis=1) / counts[idx].sum(axis=1))
    return _percentile(replicates, np.expm1(d.sum() / counts.sum()), level, len(d), n_boot, unit)


def mean_ci(values, unit: str = "chunk", level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Bootstrap interval of a mean over tokens, resampling chunks (or tokens): e.g. the mean KLD.

    A mean of per-token KLDs of a quantized model against its reference is already a paired
    comparison (each KLD compares the two models on one token).
    """
    _check_level(level, n_boot)
    v = _as_units("values", values, unit)
    sums = v.sum(axis=1)
    idx = resample_indices(len(sums), n_boot, seed)
    replicates = sums[idx].sum(axis=1) / (v.shape[1] * len(sums))
    return _percentile(replicates, float(v.mean()), level, len(sums), n_boot, unit)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (ties get average ranks): Pearson's r of the ranks."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=-1) / denom


def spearman_ci(x, y, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Bootstrap interval of Spearman's rank correlation between paired scores ``x`` and ``y``.

    The items (channels, layers) are resampled in pairs. A replicate that draws one item
    only, or all-tied values, has no defined correlation and is dropped; the interval says
    how many replicates it used (``n_boot``).
    """
    _check_level(level, n_boot)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 3:
        raise CourseError(f"x and y must be 1-D, of equal length >= 3; got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise CourseError("x and y must be finite")
    estimate = float(_spearman_rows(x, y))
    if not np.isfinite(estimate):
        raise CourseError("x or y is constant: the rank correlation is undefined")
    idx = resample_indices(len(x), n_boot, seed)
    replicates = _spearman_rows(x[idx], y[idx])
    replicates = replicates[np.isfinite(replicates)]
    return _percentile(replicates, estimate, level, len(x), len(replicates), "item")


def spearman_diff_ci(x_a, x_b, y, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Paired bootstrap interval of ``rho(x_a, y) - rho(x_b, y)``: which of two scores ranks ``y`` better.

    Each replicate resamples the items once and recomputes both correlations on that draw, so
    the items both scores find easy or hard cancel in the difference. A replicate where either
    correlation is undefined is dropped.
    """
    _check_level(level, n_boot)
    x_a, x_b, y = (np.asarray(v, dtype=np.float64) for v in (x_a, x_b, y))
    if x_a.ndim != 1 or x_a.shape != y.shape or x_b.shape != y.shape or len(y) < 3:
        raise CourseError(f"x_a, x_b and y must be 1-D, of equal length >= 3; got shapes {x_a.shape}, "
                          f"{x_b.shape} and {y.shape}")
    if not all(np.isfinite(v).all() for v in (x_a, x_b, y)):
        raise CourseError("x_a, x_b and y must be finite")
    estimate = float(_spearman_rows(x_a, y) - _spearman_rows(x_b, y))
    if not np.isfinite(estimate):
        raise CourseError("x_a, x_b or y is constant: a rank correlation is undefined")
    idx = resample_indices(len(y), n_boot, seed)
    replicates = _spearman_rows(x_a[idx], y[idx]) - _spearman_rows(x_b[idx], y[idx])
    replicates = replicates[np.isfinite(replicates)]
    return _percentile(replicates, estimate, level, len(y), len(replicates), "item")


def db_gain_ci(err_a, err_b, level: float = 0.95, n_boot: int = 2000, seed: int = 0,
               unit: str = "item") -> Interval:
    """Paired bootstrap interval of ``10 log10(sum err_a / sum err_b)``: the dB by which B beats A.

    ``err_a[i]`` and ``err_b[i]`` are the summed squared errors of two quantizers on the same
    unit ``i`` (a weight matrix, a row, a token's activations). The SQNR of a set of units is
    ``10 log10(sum w^2 / sum err)``, so the SQNR difference B - A is this ratio, and it needs
    no signal term. Each replicate draws the units with replacement and recomputes both sums
    on the same draw. Positive: B has less error.
    """
    _check_level(level, n_boot)
    a, b = np.asarray(err_a, dtype=np.float64), np.asarray(err_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise CourseError(f"err_a and err_b must be 1-D, paired, of length >= 2; got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a < 0).any() or (b < 0).any():
        raise CourseError("err_a and err_b must be finite and non-negative")
    if a.sum() <= 0 or b.sum() <= 0:
        raise CourseError("err_a and err_b must each have a positive sum (an exact quantizer has no dB ratio)")
    idx = resample_indices(len(a), n_boot, seed)
    sa, sb = a[idx].sum(axis=1), b[idx].sum(axis=1)
    ok = (sa > 0) & (sb > 0)
    replicates = 10 * np.log10(sa[ok] / sb[ok])
    return _percentile(replicates, 10 * np.log10(a.sum() / b.sum()), level, len(a), int(ok.sum()), unit)
