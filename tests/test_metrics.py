import numpy as np
import pytest

from courseutils.core.errors import CourseError, EvalTextError
from courseutils.numerics.metrics import (kl_divergence, kl_divergence_torch, log_softmax, make_chunks, perplexity,
                                          scored_slice, token_nll, top1_agreement)


def test_chunks_follow_llama_perplexity():
    tokens = np.arange(1, 1001)
    chunks = make_chunks(tokens, 100, bos_id=0)
    assert chunks.shape == (10, 100)
    assert (chunks[:, 0] == 0).all()                     # BOS replaces each chunk's first token
    assert (chunks[3, 1:] == tokens[301:400]).all()      # chunk i covers tokens[i*n_ctx:(i+1)*n_ctx]
    sl = scored_slice(100)
    assert (sl.start, sl.stop) == (50, 99)               # 49 scored positions = n_ctx - 1 - n_ctx//2
    assert make_chunks(tokens, 100, 0, n_chunks=3).shape == (3, 100)


@pytest.mark.parametrize("n", [0, 150])
def test_too_little_text_is_refused(n):
    with pytest.raises(EvalTextError, match="text"):
        make_chunks(np.arange(n), 100, 0)


@pytest.mark.parametrize("n_ctx", [0, 4, 1 << 20, 12.5])
def test_context_out_of_range(n_ctx):
    with pytest.raises(CourseError, match="n_ctx"):
        make_chunks(np.arange(100_000), n_ctx, 0)


def test_uniform_logits_give_vocab_perplexity():
    logits = np.zeros((7, 50))
    assert perplexity(token_nll(logits, np.arange(7))) == pytest.approx(50.0)


def test_nll_matches_brute_force():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 9)) * 3
    targets = rng.integers(0, 9, 5)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert np.allclose(token_nll(logits, targets), -np.log(p[np.arange(5), targets]))
    assert np.allclose(np.exp(log_softmax(logits)).sum(1), 1)


def test_kld_closed_form_and_zero():
    a = np.log(np.array([[0.5, 0.5]]))
    b = np.log(np.array([[0.9, 0.1]]))
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert kl_divergence(a, b)[0] == pytest.approx(expected)
    assert kl_divergence(a, a)[0] == 0.0
    assert top1_agreement(np.array([[1, 0], [0, 1.]]), np.array([[2, 0], [2, 1.]])) == 0.5


def test_nan_logits_raise():
    with pytest.raises(CourseError, match="NaN"):
        token_nll(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(CourseError, match="shape"):
        kl_divergence(np.zeros((2, 3)), np.zeros((3, 3)))


def _kld_cases():
    """(base, other) logit pairs ``(T, V)``: ordinary, a small perturbation (second-order KL, where
    float32 round-off would dominate), and extreme logits whose naive exp overflows (float64
    overflows past ~709, float32 past ~88) or underflows to an all-zero row."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(16, 257)) * 4
    yield "random", base, rng.normal(size=(16, 257)) * 4
    yield "small perturbation", base, base + 1e-3 * rng.normal(size=base.shape)
    big = rng.normal(size=(8, 64)) * 3
    big[:, 0] += 1000.0                                  # exp(1000) = inf in float64
    yield "huge positive", big, big + rng.normal(size=big.shape)
    yield "huge negative", big - 3000.0, big - 2990.0 + rng.normal(size=big.shape)   # exp underflows to 0
    spread = np.linspace(-1e4, 1e4, 50)[None, :] * rng.uniform(0.5, 1.5, size=(4, 1))
    yield "wide spread", spread, spread[::-1].copy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kld_torch_matches_numpy(dtype):
    """The torch KLD (the fake-quant path) against the numpy KLD (the llama.cpp path): same numbers
    to 1e-6, also where a naive softmax overflows; the inputs are the same (rounded) logits."""
    torch = pytest.importorskip("torch")
    for name, base, other in _kld_cases():
        tb, to = torch.from_numpy(base).to(getattr(torch, dtype)), torch.from_numpy(other).to(getattr(torch, dtype))
        ours_torch = kl_divergence_torch(tb, to)
        assert ours_torch.dtype == torch.float64 and ours_torch.shape == (base.shape[0],), name
        ours_np = kl_divergence(tb.double().numpy(), to.double().numpy())
        assert np.isfinite(ours_np).all() and torch.isfinite(ours_torch).all(), name
        np.testing.assert_allclose(ours_torch.numpy(), ours_np, rtol=1e-6, atol=1e-9, err_msg=name)


def test_kld_torch_closed_form_and_batched_shapes():
    torch = pytest.importorskip("torch")
    a = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    b = torch.log(torch.tensor([[0.9, 0.1]], dtype=torch.float64))
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert float(kl_divergence_torch(a, b)[0]) == pytest.approx(expected, rel=1e-12)
    assert float(kl_divergence_torch(a, a)[0]) == 0.0
    x = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0))       # (B, T, V)
    y = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(1))
    assert kl_divergence_torch(x, y).shape == (2, 3)
    np.testing.assert_allclose(kl_divergence_torch(x, y).numpy().ravel(),
                               kl_divergence(x.reshape(6, 11).numpy(), y.reshape(6, 11).numpy()), rtol=1e-6)
    with pytest.raises(CourseError, match="same shape"):
        kl_divergence_torch(x, y[:, :2])
