"""Mixed precision: which type each tensor gets, under a size budget (lesson 08).

Each tensor ``t`` has candidate types ``k`` with a size ``b[t, k]`` (bytes) and a cost
``c[t, k]``, the predicted loss increase of storing ``t`` as ``k`` (for example HAWQ's
``tr(H_t)/n_t * ||W_t - Q_k(W_t)||^2``, or lesson 04's ``sum_j alpha_j ||dW_:,j||^2``). The
allocation problem is a multiple-choice knapsack:

    minimise  sum_t c[t, k_t]   subject to   sum_t b[t, k_t] <= B                  (eq. 1)

Two solvers:

- :func:`allocate_greedy`: start every tensor at its smallest type and keep making the
  upgrade with the largest cost decrease per extra byte that still fits (fast, no
  guarantee);
- :func:`allocate_exact`: dynamic programming over the budget in units of ``g``, the
  greatest common divisor of all sizes (exact, because every size is a whole number of
  units): ``best[t][u]`` = the least cost of tensors ``0..t`` within ``u`` units.

:func:`pareto_front` picks, from measured (size, damage) pairs, the ones no other pair beats
on both at once: the curve a size-vs-KLD plot is read along.

Costs are additive across tensors, the first-order assumption lesson 04 checks.
:func:`tensor_candidates` builds the candidates from the weights themselves: each type's
size from its block layout, and its cost from the actual rounding error of llama.cpp's
block format (:mod:`courseutils.ggml.blocks`, bit-exact with llama.cpp), weighted per input
column,

    c[t, k] = sum_j w_tj * || W_t[:, j] - Q_k(W_t)[:, j] ||^2                        (eq. 2)

with ``w_tj`` the column's importance: one number per tensor (HAWQ's mean Hessian trace),
or one per column (lesson 04's alpha_j / d_out, or the imatrix's E[x_j^2]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..core.errors import CourseError
from ..ggml import blocks

__all__ = ["Candidate", "Allocation", "allocate_greedy", "allocate_exact", "uniform_allocation", "check_candidates",
           "tensor_candidates", "pareto_front"]

MAX_DP_CELLS = 50_000_000  # tensors x budget units; beyond it the exact solver refuses


@dataclass(frozen=True)
class Candidate:
    """One way to store one tensor: its type name, size in bytes and predicted cost."""

    qtype: str
    nbytes: int
    cost: float


@dataclass
class Allocation:
    """A type for every tensor, with the total size and cost (eq. 1)."""

    types: dict
    nbytes: int
    cost: float
    budget: int
    method: str


def check_candidates(candidates: Mapping[str, Sequence[Candidate]]) -> dict[str, list[Candidate]]:
    """Validate ``{tensor: [Candidate, ...]}``: non-empty, positive whole sizes, finite costs."""
    if not candidates:
        raise CourseError("candidates is empty: give at least one tensor with its candidate types")
    out = {}
    for name, options in candidates.items():
        options = list(options)
        if not options:
            raise CourseError(f"candidates[{name!r}] is empty: give at least one type for every tensor")
        for c in options:
            if not isinstance(c, Candidate):
                raise CourseError(f"candidates[{name!r}] holds {type(c).__name__}; expected Candidate(qtype, nbytes, cost)")
            if isinstance(c.nbytes, bool) or not isinstance(c.nbytes, int) or c.nbytes <= 0:
                raise CourseError(f"candidates[{name!r}]: {c.qtype} has nbytes={c.nbytes!r}; expected a positive integer")
            if not math.isfinite(c.cost):
                raise CourseError(f"candidates[{name!r}]: {c.qtype} has cost={c.cost!r}; expected a finite number")
        out[name] = sorted(options, key=lambda c: (c.nbytes, c.cost))
    return out


def _check_budget(budget, candidates: dict[str, list[Candidate]]) -> int:
    smallest = sum(opts[0].nbytes for opts in candidates.values())
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget):
        raise CourseError(f"budget={budget!r} must be a number of bytes")
    if budget < smallest:
        raise CourseError(f"budget={budget!r} bytes is below the smallest possible size, {smallest} bytes "
                          f"(every tensor at its smallest candidate type)")
    return int(budget)


def _result(candidates, choice: dict[str, Candidate], budget: int, method: str) -> Allocation:
    return Allocation({t: choice[t].qtype for t in candidates}, sum(c.nbytes for c in choice.values()),
                      float(sum(c.cost for c in choice.values())), budget, method)


def allocate_greedy(candidates: Mapping[str, Sequence[Candidate]], budget) -> Allocation:
    """Greedy upgrades by cost decrease per byte, while they fit in ``budget`` (bytes)."""
    cands = check_candidates(candidates)
    budget = _check_budget(budget, cands)
    choice = {t: opts[0] for t, opts in cands.items()}
    used = sum(c.nbytes for c in choice.values())
    while True:
        best, best_rate = None, 0.0
        for t, opts in cands.items():
            now = choice[t]
            for c in opts:
                extra, gain = c.nbytes - now.nbytes, now.cost - c.cost
                if extra > 0 and gain > 0 and used + extra <= budget and gain / extra > best_rate:
                    best, best_rate = (t, c), gain / extra
        if best is None:
            return _result(cands, choice, budget, "greedy")
        t, c = best
        used += c.nbytes - choice[t].nbytes
        choice[t] = c


def allocate_exact(candidates: Mapping[str, Sequence[Candidate]], budget) -> Allocation:
    """The optimum of eq. 1 by dynamic programming over budget units of ``gcd(sizes)`` bytes."""
    cands = check_candidates(candidates)
    budget = _check_budget(budget, cands)
    names = list(cands)
    unit = math.gcd(*(c.nbytes for opts in cands.values() for c in opts))
    n_units = budget // unit
    if len(names) * (n_units + 1) > MAX_DP_CELLS:
        raise CourseError(f"budget={budget} bytes is {n_units} units of {unit} bytes for {len(names)} tensors: "
                          f"more than {MAX_DP_CELLS:,} table cells; use allocate_greedy")
    INF = math.inf
    # best[u]: least cost of the tensors so far using at most u units; pick[i][u]: the choice made
    best = [0.0] * (n_units + 1)
    picks = []
    for name in names:
        new, pick = [INF] * (n_units + 1), [-1] * (n_units + 1)
        for k, c in enumerate(cands[name]):
            w = c.nbytes // unit
            for u in range(w, n_units + 1):
                value = best[u - w] + c.cost
                if value < new[u]:
                    new[u], pick[u] = value, k
        best = new
        picks.append(pick)
    u = min(range(n_units + 1), key=lambda v: (best[v], v))
    if best[u] == INF:
        raise CourseError(f"budget={budget} bytes: no allocation fits")  # unreachable after _check_budget
    choice = {}
    for name, pick in zip(reversed(names), reversed(picks)):
        c = cands[name][pick[u]]
        choice[name] = c
        u -= c.nbytes // unit
    return _result(cands, choice, budget, "exact")


def uniform_allocation(candidates: Mapping[str, Sequence[Candidate]], qtype: str) -> Allocation:
    """Every tensor at ``qtype`` (the baseline a mixed allocation must beat at equal size)."""
    cands = check_candidates(candidates)
    choice = {}
    for t, opts in cands.items():
        match = [c for c in opts if c.qtype == qtype]
        if not match:
            raise CourseError(f"qtype={qtype!r} is not a candidate for tensor {t!r}; "
                              f"allowed: {', '.join(c.qtype for c in opts)}")
        choice[t] = match[0]
    return _result(cands, choice, sum(c.nbytes for c in choice.values()), f"uniform {qtype}")


def tensor_candidates(weights: Mapping[str, np.ndarray], qtypes: Sequence[str],
                      importance: Mapping[str, object] | None = None) -> dict[str, list[Candidate]]:
    """``{tensor: [Candidate(type, bytes, eq. 2 cost), ...]}`` for every tensor and type.

    Args:
        weights: ``{GGUF tensor name: W (d_out, d_in)}`` (numpy or torch).
        qtypes: block types of :func:`courseutils.ggml.blocks.quant_types` (``"Q4_K"``, ...).
        importance: ``{tensor name: float or (d_in,) array}``; missing tensors (or None) weigh 1.
    """
    if not weights:
        raise CourseError("weights is empty: give {tensor name: W}")
    qtypes = [str(q).upper() for q in qtypes]
    for q in qtypes:
        blocks.block_layout(q)  # QuantTypeError naming the allowed types
    importance = importance or {}
    out = {}
    for name, W in weights.items():
        W = np.asarray(W.detach().float().cpu().numpy() if hasattr(W, "detach") else W, dtype=np.float32)
        if W.ndim != 2:
            raise CourseError(f"weights[{name!r}] has shape {W.shape}; expected (d_out, d_in)")
        w = np.asarray(importance.get(name, 1.0), dtype=np.float64)
        if w.ndim not in (0, 1) or (w.ndim == 1 and w.shape != (W.shape[1],)) or not np.isfinite(w).all() or (w < 0).any():
            raise CourseError(f"importance[{name!r}] must be a non-negative number or a ({W.shape[1]},) array; "
                              f"got shape {w.shape}")
        options = []
        for q in qtypes:
            W_hat = blocks.dequantize(blocks.quantize(W, q), q, W.shape)
            col_err = ((W.astype(np.float64) - W_hat) ** 2).sum(axis=0)  # (d_in,)
            options.append(Candidate(q, W.shape[0] * blocks.row_bytes(W.shape[1], q), float((w * col_err).sum())))
        out[name] = options
    return out


def pareto_front(sizes, costs) -> list[int]:
    """Indices of the points no other point dominates, by increasing size.

    Point ``i`` is dominated when some ``j`` has ``size_j <= size_i`` and ``cost_j <= cost_i``
    with at least one strictly smaller: then ``j`` is at least as small and at least as good.
    (On a size-vs-KLD plot, the front is the lower-left staircase.)

    Args:
        sizes, costs: ``(n,)`` each, finite (bytes and e.g. mean KLD).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    if sizes.ndim != 1 or sizes.shape != costs.shape or sizes.size == 0:
        raise CourseError(f"sizes and costs must be 1-D of the same non-zero length; got shapes {sizes.shape} "
                          f"and {costs.shape}")
    if not (np.isfinite(sizes).all() and np.isfinite(costs).all()):
        raise CourseError("sizes and costs must be finite")
    front, best = [], math.inf
    for i in sorted(range(sizes.size), key=lambda k: (sizes[k], costs[k])):   # smallest first, ties: best first
        if costs[i] < best:
            front.append(i)
            best = costs[i]
    return front
