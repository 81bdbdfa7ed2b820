"""courseutils.algorithms.sensitivity and calib.hooks against dense oracles on a small random Llama (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.core.errors import CourseError, ModelError
from courseutils.calib.hooks import LinearHooks, SuffixEvaluator, eval_loss_kld, get_linear, linear_layers, next_token_nll, swap_weight
from courseutils.algorithms.sensitivity import (collect_sensitivity, group_scores, group_truth, layer_noise_sensitivity,
                                     noise_perturbation, rank_correlation, rtn_perturbation)
from conftest import tiny_random_llama

LAYER = "model.layers.1.mlp.down_proj"


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_llama(n_seq=6, seq_len=12)


def dense_XG(model, tokens, layer):
    """All of X (N, d_in) and G = dL/dY (N, d_out) of one layer, kept in full: the oracle."""
    module = get_linear(model, layer)
    seen = {}

    def hook(mod, inp, out):
        seen["X"] = inp[0].detach().reshape(-1, inp[0].shape[-1])
        out.retain_grad()
        seen["Y"] = out

    h = module.register_forward_hook(hook)
    try:
        loss = next_token_nll(model, tokens).sum()   # the summed NLL of every sequence
        loss.backward()
    finally:
        h.remove()
        model.zero_grad(set_to_none=True)
    return seen["X"], seen["Y"].grad.reshape(-1, seen["Y"].shape[-1])


def test_alpha_equals_dense_XtDX(tiny):
    model, tokens = tiny
    stats = collect_sensitivity(model, tokens, [LAYER], batch_size=4, per_sequence=True, progress=False)[LAYER]
    X, G = dense_XG(model, tokens, LAYER)                     # (N, d_in), (N, d_out)
    N = X.shape[0]
    D = torch.diag((G * G).sum(1))                             # D_ii = ||G_i||^2
    alpha = torch.diagonal(X.T @ D @ X) / N                    # eq. 6
    np.testing.assert_allclose(stats.alpha, alpha.numpy(), rtol=1e-10)
    # eq. 5 read per token: ||G_i^T X_ij||^2 = X_ij^2 ||G_i||^2, averaged over the N tokens
    per_token = torch.stack([((G[i][:, None] * X[i][None, :]) ** 2).sum(0) for i in range(N)]).mean(0)
    np.testing.assert_allclose(stats.alpha, per_token.numpy(), rtol=1e-10)
    np.testing.assert_allclose(stats.gptq, torch.diagonal(X.T @ X).numpy(), rtol=1e-10)
    np.testing.assert_allclose(stats.awq, (X ** 2).mean(0).numpy(), rtol=1e-10)
    np.testing.assert_allclose(stats.awq_abs, X.abs().mean(0).numpy(), rtol=1e-10)
    assert stats.n_tokens == N
    # per sequence: squared norm of the sequence's own gradient G_s^T X_s, averaged over sequences
    S, T = tokens.shape
    seq = [(G[s * T:(s + 1) * T].T @ X[s * T:(s + 1) * T]) ** 2 for s in range(S)]
    np.testing.assert_allclose(stats.alpha_seq, torch.stack(seq).sum(1).mean(0).numpy(), rtol=1e-10)
    assert not np.allclose(stats.alpha_seq, stats.alpha * T)  # the cross-token terms are real


def test_grad_is_the_parameter_gradient_of_the_mean_nll(tiny):
    model, tokens = tiny
    stats = collect_sensitivity(model, tokens, [LAYER], batch_size=5, progress=False)[LAYER]
    W = get_linear(model, LAYER).weight
    (g,) = torch.autograd.grad(next_token_nll(model, tokens).mean(), [W])
    # LlamaRMSNorm computes in float32 even in a float64 model, so agreement is to ~1e-6
    np.testing.assert_allclose(stats.grad, g.numpy(), rtol=1e-4, atol=1e-9)
    assert all(p.requires_grad for p in model.parameters())  # the hooks restored the flags
    assert all(p.grad is None for p in model.parameters())   # and allocated no .grad


def test_first_order_prediction_matches_finite_differences(tiny):
    model, tokens = tiny
    stats = collect_sensitivity(model, tokens, [LAYER], progress=False)[LAYER]
    W = get_linear(model, LAYER).weight.detach()
    d = torch.as_tensor(np.random.default_rng(0).standard_normal(W.shape))
    base, _, _ = eval_loss_kld(model, tokens, progress=False)
    for eps in (1e-3, 1e-4):
        with swap_weight(model, LAYER, W + eps * d):
            moved, _, _ = eval_loss_kld(model, tokens, progress=False)
        predicted = eps * float((stats.grad * d.numpy()).sum())   # <dL/dW, dW>, eq. 1
        # first order: the remainder is O(eps^2), so relative error shrinks like eps
        assert abs((moved - base) - predicted) <= 50 * eps * abs(predicted), (eps, moved - base, predicted)
    # group_truth / group_scores agree for a small perturbation, group by group (the model's
    # RMSNorm runs in float32, so loss changes below ~1e-8 are round-off: stay above that)
    dW = 1e-3 * d.numpy()
    truth = group_truth(model, LAYER, dW, tokens, channel_group=8, progress=False)
    fo = group_scores(stats, dW, channel_group=8)["first_order"]
    np.testing.assert_allclose(truth["delta_loss"], fo, rtol=0.05, atol=0.02 * np.abs(fo).max())
    assert np.all(truth["kld"] >= 0) and truth["kld"].max() < 1e-3 * np.abs(fo).max()


def test_group_scores_definition(tiny):
    model, tokens = tiny
    stats = collect_sensitivity(model, tokens, [LAYER], progress=False)[LAYER]
    dW = noise_perturbation(get_linear(model, LAYER).weight, rel=0.1, seed=3)
    sc = group_scores(stats, dW, channel_group=4)
    col2 = (dW.astype(np.float64) ** 2).sum(0)
    np.testing.assert_allclose(sc["alpha"], (stats.alpha * col2).reshape(-1, 4).sum(1))
    np.testing.assert_allclose(sc["gptq"] / stats.n_tokens, sc["awq"])  # eq. 8 and 9 differ by N only
    assert sc["alpha"].shape == (32 // 4,)


def test_rtn_perturbation_lies_on_the_grid(tiny):
    model, _ = tiny
    W = get_linear(model, LAYER).weight.detach().numpy()
    dW = rtn_perturbation(W, bits=3, group_size=8)
    Q = (W + dW).reshape(W.shape[0], -1, 8)
    assert max(len(np.unique(np.round(g, 6))) for row in Q for g in row) <= 2 ** 3
    step = (np.maximum(W.reshape(W.shape[0], -1, 8).max(-1), 0) - np.minimum(W.reshape(W.shape[0], -1, 8).min(-1), 0)) / 7
    assert np.all(np.abs(dW.reshape(W.shape[0], -1, 8)) <= step[..., None] / 2 + 1e-6)


def test_rank_correlation_against_scipy_and_known_orders():
    from scipy import stats

    a = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert rank_correlation(a, a ** 3) == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0)}
    assert rank_correlation(a, -a)["kendall"] == pytest.approx(-1.0)
    b = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    r = rank_correlation(a, b)
    assert r["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert r["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic)
    # Kendall's tau counted by hand over all pairs (no ties): (concordant - discordant) / pairs
    signs = [np.sign((a[i] - a[j]) * (b[i] - b[j])) for i in range(5) for j in range(i + 1, 5)]
    assert r["kendall"] == pytest.approx(sum(signs) / len(signs))
    with pytest.raises(CourseError, match="constant"):
        rank_correlation(a, np.ones(5))
    with pytest.raises(CourseError, match="same length"):
        rank_correlation(a, a[:4])


def test_layer_noise_sensitivity_is_positive_and_seeded(tiny):
    model, tokens = tiny
    layers = [n for n, _ in linear_layers(model)][:3]
    r1 = layer_noise_sensitivity(model, tokens, layers, rel=0.2, seeds=(0, 1), progress=False)
    r2 = layer_noise_sensitivity(model, tokens, layers, rel=0.2, seeds=(0, 1), progress=False)
    assert r1 == r2
    assert all(v["kld"] > 0 for v in r1.values())
    # the weights are restored afterwards
    base1 = eval_loss_kld(model, tokens, progress=False)[0]
    assert base1 == eval_loss_kld(model, tokens, progress=False)[0]


def test_suffix_evaluator_equals_a_full_forward_pass(tiny):
    model, tokens = tiny
    ev = SuffixEvaluator(model, tokens, batch_size=4)
    base_nll, _, base_logits = eval_loss_kld(model, tokens, batch_size=4, progress=False)
    assert ev.base_nll == pytest.approx(base_nll, rel=1e-12)
    for layer in ("model.layers.0.self_attn.q_proj", "model.layers.1.mlp.up_proj"):
        W = get_linear(model, layer).weight.detach()
        with swap_weight(model, layer, W + 0.3 * torch.randn(W.shape, dtype=W.dtype)):
            full_nll, full_kld, _ = eval_loss_kld(model, tokens, base_logits, batch_size=4, progress=False)
            dl, kld = ev.measure(layer)
        assert dl == pytest.approx(full_nll - base_nll, rel=1e-9, abs=1e-12)
        assert kld == pytest.approx(full_kld, rel=1e-9) and kld > 0
    assert ev.block_of("model.layers.1.mlp.up_proj") == 1
    with pytest.raises(ModelError, match="decoder block"):
        ev.block_of("lm_head")


def test_hooks_see_every_linear_layer_and_clean_up(tiny):
    model, tokens = tiny
    names = [n for n, _ in linear_layers(model)]
    assert len(names) == 2 * 7 and "lm_head" not in names
    seen = set()
    with LinearHooks(model, on_forward=lambda n, X: seen.add(n)):
        with torch.no_grad():
            model(input_ids=tokens)
    assert seen == set(names)
    assert all(not m._forward_hooks for m in model.modules())


def test_bad_inputs_raise_named_errors(tiny):
    model, tokens = tiny
    with pytest.raises(CourseError, match="tokens has shape"):
        collect_sensitivity(model, torch.zeros(0, 12, dtype=torch.long), [LAYER], progress=False)
    with pytest.raises(CourseError, match="tokens has dtype"):
        collect_sensitivity(model, tokens.float(), [LAYER], progress=False)
    with pytest.raises(ModelError, match="layer='model.nope'"):
        collect_sensitivity(model, tokens, ["model.nope"], progress=False)
    with pytest.raises(ModelError, match="not an nn.Linear"):
        get_linear(model, "model.layers.0.mlp")
    stats = collect_sensitivity(model, tokens, [LAYER], progress=False)[LAYER]
    with pytest.raises(CourseError, match=r"dW has shape \(3, 3\)"):
        group_scores(stats, np.zeros((3, 3)))
    with pytest.raises(CourseError, match=r"dW has shape \(3, 3\)"):
        group_truth(model, LAYER, np.zeros((3, 3)), tokens, progress=False)
    with pytest.raises(CourseError, match="channel_group=5"):
        group_scores(stats, np.zeros(stats.grad.shape), channel_group=5)
    with pytest.raises(CourseError, match="proxy='beta'"):
        stats.proxy("beta")
    with pytest.raises(CourseError, match="rel=-1"):
        noise_perturbation(np.ones((2, 2)), rel=-1)
    with pytest.raises(CourseError, match="bits=9"):
        rtn_perturbation(np.ones((2, 8)), bits=9, group_size=8)
    with pytest.raises(CourseError, match=r"W has shape \(2, 2\)"):
        with swap_weight(model, LAYER, np.zeros((2, 2))):
            pass


def test_on_tinycode_proxies_are_positive_and_consistent(tinycode):
    from courseutils.calib.hooks import calibration_tokens

    model, tok = tinycode
    tokens = calibration_tokens(tok, n_seq=2, seq_len=64)
    assert tokens.shape == (2, 64) and int(tokens[0, 0]) == tok.bos_token_id
    stats = collect_sensitivity(model, tokens, ["model.layers.0.mlp.down_proj"], progress=False)
    s = stats["model.layers.0.mlp.down_proj"]
    assert s.alpha.shape == (model.config.intermediate_size,) and np.all(s.alpha >= 0) and s.alpha.max() > 0
    assert rank_correlation(s.awq, s.gptq)["spearman"] == pytest.approx(1.0)
