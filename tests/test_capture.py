"""Block inputs: the first block sees the embeddings; unchanged blocks reproduce the model's hidden states."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_random_llama
from courseutils.calib.capture import capture_block_inputs, decoder_blocks
from courseutils.core.errors import CourseError


def _hidden_states(model, tokens):
    with torch.no_grad():
        return model(input_ids=tokens, output_hidden_states=True).hidden_states  # (n_layers + 1) x (B, T, d)


@pytest.mark.parametrize("mode", ["sequential", "independent"])
def test_unchanged_blocks_see_the_models_own_hidden_states(mode):
    model, tokens = tiny_random_llama(4, 12)
    reference = _hidden_states(model, tokens)
    seen = []
    for i, block, inputs in capture_block_inputs(model, tokens, mode=mode, batch_size=3, progress=False):
        seen.append(torch.cat(inputs.hidden))
        assert inputs.n_tokens == 4 * 12 and block is decoder_blocks(model)[i]
    assert len(seen) == 2
    for i, h in enumerate(seen):
        torch.testing.assert_close(h, reference[i], rtol=1e-9, atol=1e-9)


def test_sequential_passes_changes_on_and_independent_does_not():
    model, tokens = tiny_random_llama(2, 10)
    reference = _hidden_states(model, tokens)
    got = {}
    for mode in ("sequential", "independent"):
        m = __import__("copy").deepcopy(model)
        for i, block, inputs in capture_block_inputs(m, tokens, mode=mode, progress=False):
            if i == 1:
                got[mode] = torch.cat(inputs.hidden)
            if i == 0:
                with torch.no_grad():
                    block.mlp.down_proj.weight.mul_(0.5)  # the "quantization" of block 0
    torch.testing.assert_close(got["independent"], reference[1], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(got["sequential"], reference[1])


def test_unknown_mode_is_a_clear_error():
    model, tokens = tiny_random_llama(1, 8)
    with pytest.raises(CourseError, match="mode='parallel'; allowed: sequential, independent"):
        next(capture_block_inputs(model, tokens, mode="parallel"))
