"""courseutils.algorithms.sensitivity and calib.hooks against dense oracles on a small random Llama (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.core.errors import CourseError, ModelError
from courseutils.calib.hooks import LinearHooks, SuffixEvaluator, eval_loss_kld, get_linear, linear_layers, next_token_nll, swap_weight
from courseutils.algorithms.sensitivity import (collect_sensitivity, group_scores, group_truth, layer_noise_sensitivity,
                                               measure_perturbation, noise_perturbation, rank_correlation,
                                               rtn_perturbation, standard_error)
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
    d_out = dW.shape[0]
    np.testing.assert_allclose(sc["alpha"], (stats.alpha * col2 / d_out).reshape(-1, 4).sum(1))
    np.testing.assert_allclose(sc["alpha_no_dout"], d_out * sc["alpha"])
    np.testing.assert_allclose(sc["gptq"] / stats.n_tokens, sc["awq"])  # eq. 8 and 9 differ by N only
    assert sc["alpha"].shape == (32 // 4,)
    whole = group_scores(stats, dW, channel_group=dW.shape[1])          # one score for the whole layer
    assert whole["alpha"].shape == (1,) and whole["alpha"][0] == pytest.approx(sc["alpha"].sum())


def test_alpha_over_d_out_is_the_expected_fisher_quadratic_of_an_isotropic_error(tiny):
    """E over dW with E[delta_j delta_j^T] = s^2 I of (1/2n) sum_i <G_i, dY_i>^2 equals (N/2n) sum_j alpha_j/d_out E||delta_j||^2.

    The left side is the position-diagonal empirical-Fisher quadratic (lesson 04, eq. 7); averaging
    it over many Gaussian dW (Monte Carlo, seeded) is the oracle for the 1/d_out factor.
    """
    model, tokens = tiny
    stats = collect_sensitivity(model, tokens, [LAYER], progress=False)[LAYER]
    X, G = dense_XG(model, tokens, LAYER)                       # (N, d_in), (N, d_out)
    N, n = X.shape[0], stats.n_pred
    rng = np.random.default_rng(0)
    s = rng.uniform(0.5, 2.0, size=X.shape[1])                  # a different error size per column
    draws = 4000
    dW = rng.standard_normal((draws, G.shape[1], X.shape[1])) * s   # (draws, d_out, d_in)
    dY = np.einsum("nj,boj->bno", X.numpy(), dW)                # (draws, N, d_out) = X dW^T
    quad = ((dY * G.numpy()[None]) .sum(-1) ** 2).sum(-1) / (2 * n)   # (draws,)
    col2 = G.shape[1] * s ** 2                                  # E ||delta_j||^2
    predicted = N / (2 * n) * float((stats.alpha / stats.d_out * col2).sum())
    se = quad.std(ddof=1) / np.sqrt(draws)
    assert abs(quad.mean() - predicted) < 4 * se, (quad.mean(), predicted, se)
    assert abs(quad.mean() - predicted * stats.d_out) > 100 * se      # without 1/d_out: far off


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
    for name in layers:
        for k in ("delta_loss", "kld", "delta_loss_seq", "kld_seq"):
            np.testing.assert_array_equal(r1[name][k], r2[name][k])
        assert r1[name]["delta_loss_seq"].shape == (tokens.shape[0],)
        # equally long sequences: the overall mean is the mean of the per-sequence means
        assert r1[name]["delta_loss"] == pytest.approx(r1[name]["delta_loss_seq"].mean(), rel=1e-9, abs=1e-15)
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


def test_per_token_measurements_add_up_and_give_a_standard_error(tiny):
    from scipy.stats import sem

    model, tokens = tiny
    ev = SuffixEvaluator(model, tokens, batch_size=4)
    assert ev.base_tokens.shape == (tokens.shape[0], tokens.shape[1] - 1)
    W = get_linear(model, LAYER).weight.detach()
    dW = 0.3 * torch.randn(W.shape, dtype=W.dtype, generator=torch.Generator().manual_seed(5))
    with swap_weight(model, LAYER, W + dW):
        dnll, kld = ev.measure_tokens(LAYER)
        full = next_token_nll(model, tokens).detach().numpy()          # the oracle: a plain forward pass
    np.testing.assert_allclose(dnll + ev.base_tokens, full, rtol=1e-9)
    assert np.all(kld >= 0)
    m = measure_perturbation(model, LAYER, dW.numpy(), ev)
    # measure_perturbation takes dW in float32 (as group_truth always has): agreement to ~1e-7
    assert m["delta_loss"] == pytest.approx(dnll.mean(), rel=1e-5) and m["kld"] == pytest.approx(kld.mean(), rel=1e-5)
    np.testing.assert_allclose(m["delta_loss_seq"], dnll.mean(1), rtol=1e-5)
    assert standard_error(m["delta_loss_seq"]) == pytest.approx(sem(m["delta_loss_seq"]))
    # group_truth keeps per-sequence values whose mean is the group's value
    t = group_truth(model, LAYER, dW.numpy(), tokens, channel_group=8, evaluator=ev, progress=False)
    assert t["delta_loss_seq"].shape == (32 // 8, tokens.shape[0])
    np.testing.assert_allclose(t["delta_loss_seq"].mean(1), t["delta_loss"], rtol=1e-9, atol=1e-15)
    with pytest.raises(CourseError, match="at least 2"):
        standard_error([1.0])


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


def test_sequence_sensitivity_averages_to_collect_sensitivity_and_sees_each_sequence_alone(tiny):
    from courseutils.algorithms.sensitivity import sequence_sensitivity

    model, tokens = tiny
    names = [n for n, _ in linear_layers(model)][:3]
    per = sequence_sensitivity(model, tokens, names, batch_size=3)      # batches of 3: a partial last batch too
    whole = collect_sensitivity(model, tokens, names, progress=False)
    for n in names:
        assert per[n].alpha.shape == (tokens.shape[0], whole[n].alpha.shape[0])
        np.testing.assert_allclose(per[n].alpha.mean(0), whole[n].alpha, rtol=1e-9)
        np.testing.assert_allclose(per[n].awq.mean(0), whole[n].awq, rtol=1e-9)
        assert per[n].d_out == whole[n].d_out
    # row s is sequence s on its own, whatever else shares its batch
    alone = collect_sensitivity(model, tokens[1:2], names, progress=False)
    np.testing.assert_allclose(per[names[0]].alpha[1], alone[names[0]].alpha, rtol=1e-9)
    with pytest.raises(CourseError, match="tokens has dtype"):
        sequence_sensitivity(model, tokens.float(), names)
    with pytest.raises(ModelError, match="layer='model.nope'"):
        sequence_sensitivity(model, tokens, ["model.nope"])


def test_subset_agreement_is_spearman_of_each_disjoint_subset_mean():
    from scipy.stats import spearmanr

    from courseutils.algorithms.sensitivity import subset_agreement

    rng = np.random.default_rng(0)
    X = np.exp(rng.normal(size=(7, 20)))                  # 7 sequences, 20 channels
    ref = np.exp(rng.normal(size=20))
    for n in (1, 2, 3, 7):
        want = [spearmanr(X[s:s + n].mean(0), ref).statistic for s in range(0, 7 - n + 1, n)]
        got = subset_agreement(X, ref, n)
        assert got.shape == (7 // n,)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(subset_agreement(X, X[:3].mean(0), 3)[0], 1.0)
    with pytest.raises(CourseError, match="n=8; allowed: an integer from 1 to n_pool=7"):
        subset_agreement(X, ref, 8)
    with pytest.raises(CourseError, match="n=0"):
        subset_agreement(X, ref, 0)
    with pytest.raises(CourseError, match=r"got shapes \(7, 20\) and \(19,\)"):
        subset_agreement(X, ref[:19], 1)


def test_calibration_tokens_of_each_kind():
    from courseutils.calib.hooks import calibration_tokens
    from courseutils.model.corpus import corpus_text
    from courseutils.model.loader import load_tokenizer
    from courseutils.model.train import encode

    tok = load_tokenizer("tinycode")
    code, prose = (calibration_tokens(tok, 2, 16, kind=k) for k in ("code", "prose"))
    assert code.shape == prose.shape == (2, 16) and not torch.equal(code, prose)
    assert torch.equal(calibration_tokens(tok, 2, 16), calibration_tokens(tok, 2, 16, kind="all"))
    # the windows are the kind's own text, BOS first
    ids = encode(tok, corpus_text("calibration", kind="prose", max_chars=5_000))
    assert prose[0, 0] == tok.bos_token_id and prose[0, 1:].tolist() == ids[1:16].tolist()
    with pytest.raises(CourseError, match="kind='docs' is not one of"):
        calibration_tokens(tok, 2, 16, kind="docs")
