"""Torch scoring on llama-perplexity's chunks: it agrees with llama.cpp on the same model and text."""
from __future__ import annotations

import numpy as np
import pytest

from courseutils.core.errors import CourseError
from courseutils.scoring.torch_eval import score_torch, text_chunks


@pytest.mark.slow
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


def test_block_output_errors_start_at_the_changed_block_and_match_hidden_states():
    import copy

    import torch

    from conftest import tiny_random_llama
    from courseutils.scoring.torch_eval import block_output_errors

    model, tokens = tiny_random_llama(3, 10)
    assert np.array_equal(block_output_errors(model, model, tokens), np.zeros((2, 3)))
    late, early = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        late.model.layers[1].mlp.down_proj.weight.mul_(0.5)    # only block 1 changes
        early.model.layers[0].mlp.down_proj.weight.mul_(0.5)   # only block 0 changes
    e = block_output_errors(model, late, tokens, batch_size=2)
    assert e.shape == (2, 3) and np.all(e[0] == 0) and np.all(e[1] > 0)
    # oracle: transformers' hidden_states[1] is block 0's output (the last entry is after the final norm)
    e = block_output_errors(model, early, tokens)
    with torch.no_grad():
        h = model(input_ids=tokens, output_hidden_states=True).hidden_states[1]      # (3, 10, 16)
        hq = early(input_ids=tokens, output_hidden_states=True).hidden_states[1]
    want = ((hq - h) ** 2).sum(dim=(1, 2)) / (h ** 2).sum(dim=(1, 2))
    np.testing.assert_allclose(e[0], want.numpy(), rtol=1e-10)
    assert np.all(e[1] > 0), "an error made in block 0 reaches block 1's output"


def test_block_output_errors_need_the_same_architecture():
    from conftest import tiny_random_llama
    from courseutils.scoring.torch_eval import block_output_errors

    model, tokens = tiny_random_llama(2, 8)
    other = __import__("copy").deepcopy(model)
    del other.model.layers[1]
    with pytest.raises(CourseError, match="qmodel has 1 decoder blocks and model has 2"):
        block_output_errors(model, other, tokens)
