"""Mixed-precision allocation (lesson 08): budgets hold, exact >= greedy, uniform is reproduced."""
from __future__ import annotations

import itertools
import random

import pytest

from courseutils.algorithms.allocation import (Candidate, allocate_exact, allocate_greedy, check_candidates,
                                               uniform_allocation)
from courseutils.core.errors import CourseError

# bytes per 256 weights, as llama.cpp's K-quants store them
BLOCK = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def _problem(seed: int, n: int = 6, equal: bool = False) -> dict:
    rng = random.Random(seed)
    out = {}
    for t in range(n):
        blocks = rng.choice([64, 128, 192])
        sens = 1.0 if equal else rng.lognormvariate(0, 1.5)
        # error of a type: about 4x smaller per extra bit (6 dB per bit)
        out[f"t{t}"] = [Candidate(q, blocks * b, sens * blocks * 4.0 ** -i) for i, (q, b) in enumerate(BLOCK.items())]
    return out


def _brute_force(cands: dict, budget: int) -> float:
    best = float("inf")
    for combo in itertools.product(*cands.values()):
        if sum(c.nbytes for c in combo) <= budget:
            best = min(best, sum(c.cost for c in combo))
    return best


@pytest.mark.parametrize("seed", range(8))
def test_exact_is_the_optimum_and_greedy_never_beats_it(seed):
    cands = _problem(seed, n=5)
    lo = sum(c[0].nbytes for c in cands.values())
    hi = sum(c[-1].nbytes for c in cands.values())
    for budget in (lo, (2 * lo + hi) // 3, (lo + 2 * hi) // 3, hi):
        exact, greedy = allocate_exact(cands, budget), allocate_greedy(cands, budget)
        assert exact.nbytes <= budget and greedy.nbytes <= budget
        assert exact.cost == pytest.approx(_brute_force(cands, budget), rel=1e-12)
        assert exact.cost <= greedy.cost * (1 + 1e-12)


def test_greedy_can_be_worse_than_exact():
    """One big upgrade beats two cheap ones that use the budget worse: greedy takes the cheap rate."""
    cands = {"a": [Candidate("Q2_K", 10, 10.0), Candidate("Q4_K", 20, 0.0)],
             "b": [Candidate("Q2_K", 10, 3.0), Candidate("Q4_K", 12, 0.0)]}
    greedy, exact = allocate_greedy(cands, 30), allocate_exact(cands, 30)
    assert exact.types == {"a": "Q4_K", "b": "Q2_K"} and exact.cost == 3.0
    assert greedy.types == {"a": "Q2_K", "b": "Q4_K"} and greedy.cost == 10.0


def test_equal_sensitivities_reproduce_the_uniform_allocation():
    cands = {f"t{i}": [Candidate(q, 128 * b, 128 * 4.0 ** -k) for k, (q, b) in enumerate(BLOCK.items())]
             for i in range(6)}
    for qtype in ("Q3_K", "Q4_K", "Q5_K"):
        uniform = uniform_allocation(cands, qtype)
        for solve in (allocate_exact, allocate_greedy):
            assert solve(cands, uniform.nbytes).types == uniform.types, (solve.__name__, qtype)


def test_more_budget_never_costs_more():
    cands = _problem(3, n=8)
    lo = sum(c[0].nbytes for c in cands.values())
    costs = [allocate_exact(cands, lo + k * 2000).cost for k in range(10)]
    assert all(b <= a for a, b in zip(costs, costs[1:]))


@pytest.mark.parametrize("call, match", [
    (lambda c: allocate_exact(c, 10), r"budget=10 bytes is below the smallest possible size"),
    (lambda c: allocate_greedy(c, float("nan")), r"budget=nan must be a number of bytes"),
    (lambda c: allocate_exact(c, "1MB"), r"budget='1MB' must be a number of bytes"),
    (lambda c: uniform_allocation(c, "Q7_K"), r"qtype='Q7_K' is not a candidate for tensor 't0'; allowed: Q2_K"),
    (lambda c: allocate_exact({}, 100), r"candidates is empty"),
    (lambda c: check_candidates({"x": [Candidate("Q4_K", 0, 1.0)]}), r"nbytes=0"),
    (lambda c: check_candidates({"x": [Candidate("Q4_K", 10, float("inf"))]}), r"cost=inf"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(CourseError, match=match):
        call(_problem(0))


def test_tensor_candidates_sizes_are_llama_cpps_and_costs_are_weighted_errors(f16_gguf, tmp_path):
    """Sizes equal the bytes llama.cpp writes for each type; costs follow eq. 2."""
    import gguf
    import numpy as np

    from courseutils.algorithms.allocation import tensor_candidates
    from courseutils.ggml import blocks
    from courseutils.llamacpp import quantize

    reader = gguf.GGUFReader(str(f16_gguf))
    names = ["blk.0.attn_q.weight", "blk.0.ffn_down.weight"]
    weights = {t.name: np.asarray(t.data, dtype=np.float32).reshape(t.shape[::-1]) for t in reader.tensors if t.name in names}
    col = np.linspace(0.0, 2.0, weights[names[1]].shape[1])
    cands = tensor_candidates(weights, ["Q3_K", "Q4_K", "Q8_0"], {names[0]: 3.0, names[1]: col})
    for k, q in enumerate(["Q3_K", "Q4_K", "Q8_0"]):
        out = quantize(f16_gguf, tmp_path / f"{q}.gguf", "Q4_K_S", tensor_types={n: q for n in names})
        sizes = {t.name: int(t.n_bytes) for t in gguf.GGUFReader(str(out)).tensors}
        for n in names:
            assert cands[n][k].nbytes == sizes[n], (n, q)
        W = weights[names[1]]
        dW = W.astype(np.float64) - blocks.dequantize(blocks.quantize(W, q), q, W.shape)
        assert cands[names[1]][k].cost == pytest.approx(float((col * (dW ** 2).sum(0)).sum()), rel=1e-12)
    assert cands[names[0]][0].cost > cands[names[0]][1].cost > cands[names[0]][2].cost  # more bits, less error
    with pytest.raises(CourseError, match=r"importance\['blk.0.attn_q.weight'\] must be"):
        tensor_candidates(weights, ["Q4_K"], {names[0]: np.ones(3)})


@pytest.mark.parametrize("seed", range(6))
def test_pareto_front_is_exactly_the_undominated_points(seed):
    from courseutils.algorithms.allocation import pareto_front

    rng = random.Random(seed)
    sizes = [rng.randint(1, 8) for _ in range(12)]        # small integers: ties in size and in cost happen
    costs = [rng.randint(1, 8) for _ in range(12)]
    front = pareto_front(sizes, costs)
    # brute force: i is dominated when j is no larger and no worse, and better in one of the two
    undominated = {i for i in range(12) if not any(
        sizes[j] <= sizes[i] and costs[j] <= costs[i] and (sizes[j] < sizes[i] or costs[j] < costs[i])
        for j in range(12))}
    # exact duplicates of a front point dominate each other in neither direction: keep one of each
    assert {(sizes[i], costs[i]) for i in front} == {(sizes[i], costs[i]) for i in undominated}
    assert len(front) == len({(sizes[i], costs[i]) for i in front})
    assert [sizes[i] for i in front] == sorted(sizes[i] for i in front)
    assert all(costs[a] > costs[b] for a, b in zip(front, front[1:]))


def test_pareto_front_rejects_bad_input():
    from courseutils.algorithms.allocation import pareto_front

    with pytest.raises(CourseError, match="same non-zero length"):
        pareto_front([1, 2], [1.0])
    with pytest.raises(CourseError, match="finite"):
        pareto_front([1, 2], [1.0, float("nan")])
