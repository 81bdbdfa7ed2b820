"""Whole-model RTN/GPTQ: RTN equals the kernel layer by layer; GPTQ lowers the layer loss and the perplexity."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_random_llama
from courseutils.algorithms.apply import quantize_model
from courseutils.algorithms.quantizer import QuantSpec, rtn_quantize
from courseutils.calib.hooks import linear_layers
from courseutils.core.errors import CourseError


@pytest.mark.slow
def test_rtn_model_is_the_kernel_applied_to_every_linear_and_the_original_is_untouched():
    model, tokens = tiny_random_llama(4, 16)
    before = {n: m.weight.detach().clone() for n, m in linear_layers(model)}
    q = quantize_model(model, tokens, "rtn", QuantSpec(4, 8), progress=False)
    for name, module in linear_layers(q.model):
        assert torch.equal(module.weight, rtn_quantize(before[name], QuantSpec(4, 8)).double())
        assert torch.equal(dict(linear_layers(model))[name].weight, before[name])
    assert set(q.layer_errors) == set(before)


def test_gptq_model_has_lower_total_layer_loss_than_rtn():
    model, tokens = tiny_random_llama(8, 32)
    rtn = quantize_model(model, tokens, "rtn", QuantSpec(3, None), progress=False)
    gptq = quantize_model(model, tokens, "gptq", QuantSpec(3, None), progress=False)
    assert sum(gptq.layer_errors.values()) < sum(rtn.layer_errors.values())


def test_unknown_method_is_a_clear_error():
    model, tokens = tiny_random_llama(1, 8)
    with pytest.raises(CourseError, match="method='smoothquant'; allowed: rtn, gptq, awq"):
        quantize_model(model, tokens, "smoothquant")


@pytest.mark.slow
def test_gptq_beats_rtn_on_tinycode_perplexity_at_3_bits(tinycode, val_text):
    """Measured: RTN +9.1 %, GPTQ +5.9 % over F16 (W3 per channel); GPTQ vs RTN -3.0 % [-5.6, -0.5]."""
    from courseutils.calib.hooks import calibration_tokens
    from courseutils.numerics.bootstrap import ppl_diff_ci
    from courseutils.scoring.torch_eval import score_torch, text_chunks

    model, tokenizer = tinycode
    calib = calibration_tokens(tokenizer, n_seq=32, seq_len=256)
    chunks = text_chunks(tokenizer, val_text, n_ctx=256, n_chunks=24)
    spec = QuantSpec(3, None)
    rtn = score_torch(quantize_model(model, calib, "rtn", spec, progress=False).model, chunks)
    gptq = score_torch(quantize_model(model, calib, "gptq", spec, progress=False).model, chunks)
    ci = ppl_diff_ci(rtn.nll, gptq.nll)  # GPTQ relative to RTN
    assert ci.estimate < 0, f"GPTQ {gptq.ppl:.3f} vs RTN {rtn.ppl:.3f}: change {ci.format(100, suffix=' %')}"
