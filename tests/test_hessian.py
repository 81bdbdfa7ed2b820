"""courseutils.calib.hessian against exact Hessians (torch.autograd.functional.hessian) and dense sums."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.core.errors import CourseError
from courseutils.calib.hessian import (HessianAccumulator, dampen, double_backward_attention, empirical_fisher,
                                 hessian_inverse, hessian_vector_product, hutchinson_trace, hutchinson_variance,
                                 layer_hessians, model_hutchinson)
from courseutils.calib.hooks import get_linear, next_token_nll
from conftest import tiny_random_llama

LAYER = "model.layers.0.self_attn.k_proj"   # 8 x 16 = 128 weights: its exact Hessian is cheap


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_llama(n_seq=4, seq_len=10)


def test_accumulator_equals_dense_2XtX_over_N():
    X = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    acc = HessianAccumulator(6)
    for part in (X[:7], X[7:8], X[8:8], X[8:]):       # uneven batches, one empty
        acc.add_batch(part)
    torch.testing.assert_close(acc.H, 2 * X.T @ X / 50)
    assert acc.n == 50
    with pytest.raises(CourseError, match="d_in=6"):
        acc.add_batch(torch.zeros(3, 5))


def gptq_add_batch(H, nsamples, inp):
    """GPTQ's ``add_batch`` for an nn.Linear (IST-DASLab/gptq, gptq.py), transcribed: the oracle."""
    if len(inp.shape) == 2:
        inp = inp.unsqueeze(0)
    tmp = inp.shape[0]
    if len(inp.shape) == 3:
        inp = inp.reshape((-1, inp.shape[-1]))
    inp = inp.t()
    H *= nsamples / (nsamples + tmp)
    nsamples += tmp
    inp = (2 / nsamples) ** 0.5 * inp
    H += inp.matmul(inp.t())
    return H, nsamples


def test_count_sequence_is_gptqs_hessian_and_T_times_ours():
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(b, 12, 5, dtype=torch.float64, generator=g) for b in (2, 1, 3)]   # (B, T, d_in)
    H, n = torch.zeros(5, 5, dtype=torch.float64), 0
    ours, gptq_like = HessianAccumulator(5), HessianAccumulator(5, count="sequence")
    for X in batches:
        H, n = gptq_add_batch(H, n, X)
        ours.add_batch(X)
        gptq_like.add_batch(X)
    torch.testing.assert_close(gptq_like.H, H)
    assert gptq_like.n == n == 6 and ours.n == 72
    torch.testing.assert_close(gptq_like.H, 12 * ours.H)                  # T = 12 tokens per sequence
    with pytest.raises(CourseError, match="count='sequence' needs"):
        gptq_like.add_batch(torch.zeros(4, 5))
    with pytest.raises(CourseError, match="count='tokens'"):
        HessianAccumulator(5, count="tokens")


def test_hutchinson_variance_equals_the_variance_over_all_probes():
    """Enumerate all 2^n Rademacher vectors of a small symmetric H: the exact variance per block."""
    import itertools

    rng = np.random.default_rng(2)
    A = rng.standard_normal((7, 7))
    H = A + A.T
    blocks = [slice(0, 3), slice(3, 7)]
    V = np.array(list(itertools.product([-1.0, 1.0], repeat=7)))          # (128, 7): every probe, equally likely
    HV = V @ H
    for b, var in zip(blocks, hutchinson_variance(H, blocks)):
        est = (V[:, b] * HV[:, b]).sum(1)                                   # v_l^T (H v)_l per probe
        assert est.mean() == pytest.approx(np.trace(H[b, b]))
        assert var == pytest.approx(est.var(), rel=1e-12)
    whole = (V * HV).sum(1)
    assert hutchinson_variance(H)[0] == pytest.approx(whole.var(), rel=1e-12)
    with pytest.raises(CourseError, match="symmetric"):
        hutchinson_variance(A)


def test_layer_hessians_match_the_inputs_seen(tiny):
    model, tokens = tiny
    seen = []
    h = get_linear(model, LAYER).register_forward_hook(lambda m, i, o: seen.append(i[0].reshape(-1, 16)))
    with torch.no_grad():
        model(input_ids=tokens)
    h.remove()
    X = seen[0]                                                 # (N, d_in)
    H = layer_hessians(model, tokens, [LAYER], batch_size=3, progress=False)[LAYER]
    torch.testing.assert_close(H, 2 * X.T @ X / X.shape[0])


def test_dampen_and_inverse():
    X = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    H = 2 * X.T @ X / 40
    Hd = dampen(H, 0.1)
    torch.testing.assert_close(Hd - H, 0.1 * H.diagonal().mean() * torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(hessian_inverse(H, 0.1) @ Hd, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(hessian_inverse(H, 0) @ H, torch.eye(5, dtype=torch.float64))


def test_singular_hessian_needs_dampening():
    X = torch.randn(3, 8, dtype=torch.float64)                   # 3 tokens, 8 channels: rank 3
    H = 2 * X.T @ X / 3
    with pytest.raises(CourseError, match=r"singular .* damp=0.*pass damp > 0"):
        hessian_inverse(H, damp=0)
    Hinv = hessian_inverse(H, damp=0.01)                          # dampened: fine
    torch.testing.assert_close(Hinv @ dampen(H, 0.01), torch.eye(8, dtype=torch.float64))
    with pytest.raises(CourseError, match=r"shape \(2, 3\)"):
        dampen(torch.zeros(2, 3))
    with pytest.raises(CourseError, match="damp=-1"):
        dampen(H, -1)


def _mlp_problem():
    """A small two-layer tanh network with a cross-entropy loss, and its parameters."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(50, 4, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    W1 = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    W2 = torch.randn(3, 5, dtype=torch.float64, generator=g, requires_grad=True)

    def loss_of(W1_, W2_):
        return torch.nn.functional.cross_entropy(torch.tanh(X @ W1_.T) @ W2_.T, y)

    return loss_of, [W1, W2]


def test_hvp_equals_exact_hessian_times_v():
    loss_of, (W1, W2) = _mlp_problem()
    H = torch.autograd.functional.hessian(lambda a, b: loss_of(a.reshape(5, 4), b.reshape(3, 5)),
                                          (W1.detach().reshape(-1), W2.detach().reshape(-1)))
    H = torch.cat([torch.cat([H[i][j] for j in range(2)], 1) for i in range(2)], 0)   # (35, 35)
    v = [torch.randn_like(W1), torch.randn_like(W2)]
    Hv = hessian_vector_product(lambda: loss_of(W1, W2), [W1, W2], v)
    torch.testing.assert_close(torch.cat([h.reshape(-1) for h in Hv]), H @ torch.cat([x.reshape(-1) for x in v]))


def test_hutchinson_reaches_the_exact_trace():
    loss_of, (W1, W2) = _mlp_problem()
    H = torch.autograd.functional.hessian(lambda a, b: loss_of(a.reshape(5, 4), b.reshape(3, 5)),
                                          (W1.detach().reshape(-1), W2.detach().reshape(-1)))
    H = torch.cat([torch.cat([H[i][j] for j in range(2)], 1) for i in range(2)], 0).numpy()
    blocks = [np.arange(20), np.arange(20, 35)]
    m = 200
    est = hutchinson_trace(lambda: loss_of(W1, W2), [W1, W2], n_probes=m, seed=0, progress=False)
    assert est.shape == (m, 2)
    for b, idx in enumerate(blocks):
        exact = np.trace(H[np.ix_(idx, idx)])
        # variance of one Rademacher probe of block p (v drawn over all parameters):
        #   2 sum_{i != j in p} H_ij^2 + sum_{i in p, j not in p} H_ij^2
        inside = H[np.ix_(idx, idx)]
        outside = np.delete(H[idx], idx, axis=1)
        sigma = np.sqrt(2 * ((inside ** 2).sum() - (np.diag(inside) ** 2).sum()) + (outside ** 2).sum())
        tol = 4 * sigma / np.sqrt(m)            # four standard errors (the seed is fixed: deterministic)
        assert abs(est[:, b].mean() - exact) < tol, (b, est[:, b].mean(), exact, tol)
        assert tol < 0.3 * abs(exact)           # and the test is tight enough to mean something


def test_model_hutchinson_probe_equals_exact_layer_hessian(tiny):
    from torch.func import functional_call

    model, tokens = tiny
    W = get_linear(model, LAYER).weight.detach().clone()

    def loss_of(Wf):
        with double_backward_attention():
            return next_token_nll(lambda **kw: functional_call(model, {LAYER + ".weight": Wf}, kwargs=kw),
                                  tokens).mean()

    H = torch.autograd.functional.hessian(loss_of, W, vectorize=True).reshape(W.numel(), W.numel())  # (128, 128)
    est = model_hutchinson(model, tokens, [LAYER], n_probes=3, seed=7, progress=False)[LAYER]
    gen = torch.Generator().manual_seed(7)                      # the same probes, drawn again
    for k in range(3):
        v = (torch.randint(0, 2, W.shape, generator=gen) * 2 - 1).to(torch.float64).reshape(-1)
        assert est[k] == pytest.approx(float(v @ H @ v), rel=1e-4, abs=1e-9)
    assert all(p.requires_grad for p in model.parameters())


def test_empirical_fisher_diag_and_block(tiny):
    model, tokens = tiny
    W = get_linear(model, LAYER).weight
    grads = []
    for s in range(tokens.shape[0]):                            # per-sequence gradients of the summed NLL
        (g,) = torch.autograd.grad(next_token_nll(model, tokens[s:s + 1]).sum(), [W])
        grads.append(g.reshape(-1))
    G = torch.stack(grads)                                      # (S, P)
    count = tokens.shape[0] * (tokens.shape[1] - 1)
    diag = empirical_fisher(model, tokens, [LAYER], mode="diag", progress=False)[LAYER + ".weight"]
    block = empirical_fisher(model, tokens, [LAYER], mode="block", progress=False)[LAYER + ".weight"]
    torch.testing.assert_close(diag.reshape(-1), (G ** 2).sum(0) / count, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(block, G.T @ G / count, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(block.diagonal(), diag.reshape(-1))
    assert torch.linalg.matrix_rank(block) <= tokens.shape[0]   # S sequences: rank at most S
    # the true Fisher samples labels from the model: seeded, and different from the data's
    t1 = empirical_fisher(model, tokens, [LAYER], labels="model", seed=3, progress=False)[LAYER + ".weight"]
    t2 = empirical_fisher(model, tokens, [LAYER], labels="model", seed=3, progress=False)[LAYER + ".weight"]
    torch.testing.assert_close(t1, t2)
    assert not torch.allclose(t1, diag)


def test_bad_fisher_and_hutchinson_arguments(tiny):
    model, tokens = tiny
    with pytest.raises(CourseError, match="mode='full'"):
        empirical_fisher(model, tokens, [LAYER], mode="full")
    with pytest.raises(CourseError, match="labels='sampled'"):
        empirical_fisher(model, tokens, [LAYER], labels="sampled")
    with pytest.raises(CourseError, match="max_block=10"):
        empirical_fisher(model, tokens, [LAYER], mode="block", max_block=10)
    with pytest.raises(CourseError, match="not parameters"):
        empirical_fisher(model, tokens, ["model.nothing"])
    with pytest.raises(CourseError, match="n_probes=0"):
        model_hutchinson(model, tokens, [LAYER], n_probes=0)
    with pytest.raises(CourseError, match="tokens has shape"):
        layer_hessians(model, torch.zeros(0, 5, dtype=torch.long), [LAYER])
