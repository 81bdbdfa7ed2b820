"""GPTQ against its oracles: RTN when H = I, never worse than RTN on the layer loss, valid groups."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.algorithms.gptq import gptq_quantize, layer_error
from courseutils.algorithms.quantizer import QuantSpec, rtn_quantize
from courseutils.core.errors import CourseError


def random_layer(d_out=64, d_in=256, n=1024, seed=0):
    """Weights and a Hessian 2 X^T X / n from correlated inputs with a few large channels (like LLMs)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d_out, d_in, generator=g) * 0.05
    mix = torch.randn(d_in, d_in, generator=g) / d_in**0.5
    X = torch.randn(n, d_in, generator=g) @ (torch.eye(d_in) + mix)
    X[:, :4] *= 8.0  # outlier input channels
    H = 2 * X.T @ X / n
    return W, H


@pytest.mark.parametrize("spec", [QuantSpec(4, 128), QuantSpec(3, None), QuantSpec(4, 64, symmetric=True)])
def test_identity_hessian_is_rtn(spec):
    W, _ = random_layer()
    result = gptq_quantize(W, torch.eye(W.shape[1]), spec)
    assert torch.equal(result.W_hat, rtn_quantize(W, spec))


@pytest.mark.parametrize("spec", [QuantSpec(4, 128), QuantSpec(3, 128), QuantSpec(4, None), QuantSpec(3, None),
                                  QuantSpec(2, 64)])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_rtn_on_the_layer_loss(spec, act_order):
    W, H = random_layer(seed=spec.bits)
    gptq = layer_error(W, gptq_quantize(W, H, spec, act_order=act_order).W_hat, H)
    rtn = layer_error(W, rtn_quantize(W, spec), H)
    assert gptq < rtn, f"{spec.label()} act_order={act_order}: GPTQ {gptq:.4g} vs RTN {rtn:.4g}"


@pytest.mark.parametrize("static_groups", [False, True])
def test_act_order_with_groups_gives_a_valid_grouping(static_groups):
    spec = QuantSpec(3, 32)
    W, H = random_layer(d_out=16, d_in=128)
    r = gptq_quantize(W, H, spec, act_order=True, static_groups=static_groups)
    counts = torch.bincount(r.g_idx, minlength=128 // 32)
    assert counts.tolist() == [32] * 4  # every group has group_size columns
    for k in range(4):
        cols = r.g_idx == k
        for row in r.W_hat[:, cols]:
            assert len(torch.unique(row)) <= 2**spec.bits  # one (s, z) grid per group and row
    if static_groups:
        assert torch.equal(r.g_idx, torch.arange(128) // 32)


def test_block_size_does_not_change_the_result():
    W, H = random_layer(d_out=8, d_in=256)
    a = gptq_quantize(W, H, QuantSpec(4, 64), block_size=64).W_hat
    b = gptq_quantize(W, H, QuantSpec(4, 64), block_size=256).W_hat
    assert torch.allclose(a, b, atol=1e-5)


def test_dead_inputs_get_zero_weights():
    W, H = random_layer(d_out=8, d_in=128)
    H[5, :] = 0
    H[:, 5] = 0
    r = gptq_quantize(W, H, QuantSpec(4, None))
    assert torch.all(r.W_hat[:, 5] == 0)


def test_rtn_matches_lesson_01s_quantizer():
    """The torch kernel is numerics.linear's quantizer: same scales, zeros and rounding."""
    from courseutils.numerics.linear import fake_quantize

    W, _ = random_layer(d_out=32, d_in=256)
    for spec, scheme in [(QuantSpec(4, 64), "zeropoint"), (QuantSpec(3, 128, symmetric=True), "absmax")]:
        ours = rtn_quantize(W, spec).numpy()
        ref = fake_quantize(W.numpy(), spec.bits, scheme, "group", spec.group_size)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_clip_search_is_never_worse_per_row():
    W, _ = random_layer(d_out=32, d_in=128)
    W[:, 0] = 1.0  # an outlier per row: clipping pays
    plain = ((rtn_quantize(W, QuantSpec(3, None)) - W) ** 2).sum(dim=1)
    clipped = ((rtn_quantize(W, QuantSpec(3, None, clip_search=True)) - W) ** 2).sum(dim=1)
    assert torch.all(clipped <= plain + 1e-9) and clipped.sum() < plain.sum()


@pytest.mark.parametrize("kwargs, match", [
    (dict(bits=1), "bits=1 must be an integer from 2 to 8"),
    (dict(bits=9), "bits=9"),
    (dict(group_size=0), "group_size=0"),
])
def test_bad_spec_is_a_clear_error(kwargs, match):
    with pytest.raises(CourseError, match=match):
        QuantSpec(**kwargs)


def test_group_size_must_divide_the_row():
    W, H = random_layer(d_out=4, d_in=256)
    with pytest.raises(CourseError, match="group_size=96 does not divide the row length d_in=256"):
        gptq_quantize(W, H, QuantSpec(4, 96))
    with pytest.raises(CourseError, match="group_size=96"):
        rtn_quantize(W, QuantSpec(4, 96))


def test_bad_shapes_are_clear_errors():
    W, H = random_layer(d_out=4, d_in=64)
    with pytest.raises(CourseError, match=r"H must be a \(d_in, d_in\) = \(64, 64\)"):
        gptq_quantize(W, H[:32, :32], QuantSpec(4, None))
    with pytest.raises(CourseError, match="W must be a 2-D"):
        gptq_quantize(W[0], H, QuantSpec(4, None))
    with pytest.raises(CourseError, match="damp=0"):
        gptq_quantize(W, H, QuantSpec(4, None), damp=0)


@pytest.mark.slow
def test_gptq_beats_rtn_on_every_tinycode_linear_layer(tinycode):
    """On real layers and real calibration inputs (independent Hessians from the F16 model)."""
    from courseutils.calib.hessian import layer_hessians
    from courseutils.calib.hooks import calibration_tokens, get_linear

    model, tokenizer = tinycode
    tokens = calibration_tokens(tokenizer, n_seq=8, seq_len=128)
    hessians = layer_hessians(model, tokens, progress=False)
    worse = []
    for name, H in hessians.items():
        W = get_linear(model, name).weight.detach()
        for spec in (QuantSpec(4, 128), QuantSpec(3, None)):
            gptq = layer_error(W, gptq_quantize(W, H, spec).W_hat, H)
            rtn = layer_error(W, rtn_quantize(W, spec), H)
            if not gptq <= rtn:
                worse.append(f"{name} {spec.label()}: GPTQ {gptq:.4g} > RTN {rtn:.4g}")
    assert len(hessians) >= 40 and not worse, worse
