import numpy as np
import pytest

from courseutils.core.errors import CourseError, EvalTextError
from courseutils.numerics.metrics import (kl_divergence, log_softmax, make_chunks, perplexity, scored_slice, token_nll,
                                 top1_agreement)


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
