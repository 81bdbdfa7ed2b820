"""Torch scoring on llama-perplexity's chunks: it agrees with llama.cpp on the same model and text."""
from __future__ import annotations

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.scoring.torch_eval import score_torch, text_chunks


def test_a_model_against_itself_has_zero_kld_and_full_agreement(tinycode, val_text):
    model, tokenizer = tinycode
    chunks = text_chunks(tokenizer, val_text, n_ctx=64, n_chunks=3)
    s = score_torch(model, chunks, base=model)
    assert s.nll.shape == s.kld.shape == (3, 64 - 1 - 32)
    assert np.all(s.kld < 1e-9) and s.same_top.all() and np.array_equal(s.nll, s.base_nll)


@pytest.mark.slow
def test_torch_perplexity_matches_llama_cpp_f16(tinycode, val_text, f16_gguf):
    """The F16 GGUF in llama.cpp and the HF model in torch: same chunks, same scored tokens."""
    from courseutils.scoring.evaluate import perplexity_gguf

    model, tokenizer = tinycode
    ours = score_torch(model, text_chunks(tokenizer, val_text, n_ctx=256, n_chunks=6))
    ref = perplexity_gguf(f16_gguf, val_text, n_ctx=256, n_chunks=6)
    assert ours.nll.size == ref["n_scored"]
    assert ours.ppl == pytest.approx(ref["ppl"], rel=2e-3)


def test_bad_chunks_and_text_are_clear_errors(tinycode):
    model, tokenizer = tinycode
    with pytest.raises(CourseError, match="chunks must be"):
        score_torch(model, np.zeros(10, dtype=int))
    with pytest.raises(CourseError, match="text is empty"):
        text_chunks(tokenizer, "  ")
