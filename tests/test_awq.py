"""AWQ (lesson 07): alpha = 0 is RTN, folding is exact, both searches return their measured minimum."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_random_llama
from courseutils.algorithms.apply import quantize_model
from courseutils.algorithms.awq import (LLAMA_SCALE_GROUPS, activation_mean, awq_scales, clip_search, fold_scales,
                                        keep_channels, salient_channels, scale_groups, scaled_quantize, search_scale,
                                        capture_calls, run_module)
from courseutils.algorithms.quantizer import CLIP_GRID, QuantSpec, fit_params, quantize_dequantize, rtn_quantize
from courseutils.calib.capture import capture_block_inputs, decoder_blocks, run_block
from courseutils.calib.hooks import linear_layers
from courseutils.core.errors import CourseError

SPEC = QuantSpec(3, 8)


def _llama(kv_heads: int = 2):
    """A 2-layer float64 Llama; with kv_heads = heads there is no grouped-query attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=kv_heads, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).to(torch.float64).eval()
    with torch.no_grad():  # non-trivial norms, so that folding into them is really tested
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    tokens = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))
    return model, tokens


def test_alpha_zero_without_clipping_is_rtn_exactly():
    model, tokens = tiny_random_llama(4, 16)
    awq = quantize_model(model, tokens, "awq", SPEC, alpha_grid=(0.0,), clip=False, progress=False)
    rtn = quantize_model(model, tokens, "rtn", SPEC, progress=False)
    for (name, a), (_, r) in zip(awq.model.named_parameters(), rtn.model.named_parameters()):
        assert torch.equal(a, r), name
    assert all(r.alpha == 0.0 for r in awq.searches.values())


def test_folding_leaves_the_full_precision_logits_unchanged():
    model, tokens = _llama(kv_heads=2)
    before = model(tokens).logits
    gen = torch.Generator().manual_seed(2)
    folded = 0
    for block in decoder_blocks(model):
        groups = scale_groups(block)
        assert [g.prev for g in groups] == [g.prev for g in LLAMA_SCALE_GROUPS]  # v -> o foldable: no GQA
        for g in groups:
            s = 0.25 + 3.75 * torch.rand(block.get_submodule(g.linears[0]).in_features, generator=gen)
            fold_scales(block, g, s)
            folded += 1
    after = model(tokens).logits
    assert folded == 8
    assert torch.allclose(after, before, atol=1e-5, rtol=0), float((after - before).abs().max())
    assert not torch.allclose(decoder_blocks(model)[0].input_layernorm.weight, torch.ones(16, dtype=torch.float64))


def test_grouped_query_attention_skips_v_to_o():
    model, _ = _llama(kv_heads=1)
    prevs = [g.prev for g in scale_groups(decoder_blocks(model)[0])]
    assert prevs == ["input_layernorm", "post_attention_layernorm", "mlp.up_proj"]


def test_scale_search_returns_the_grid_point_with_the_least_measured_module_error():
    model, tokens = _llama()
    _, block, inputs = next(capture_block_inputs(model, tokens, progress=False))
    group = LLAMA_SCALE_GROUPS[2]                     # post_attention_layernorm -> gate, up; measured on the MLP
    calls = capture_calls(block, inputs, [group.inspect])[group.inspect]
    X = torch.cat([args[0].reshape(-1, 16) for args, _ in calls])   # the MLP's input = gate's and up's input
    reference = run_module(block.mlp, calls)
    before = run_block(block, inputs)
    x_mean = activation_mean(X)
    grid = (0.0, 0.25, 0.5, 0.75)
    result = search_scale(block, group, calls, x_mean, SPEC, grid)
    assert torch.equal(run_block(block, inputs)[0], before[0])      # the block is restored
    for alpha, loss in zip(grid, result.losses):                       # each loss is eq. 3, measured
        s = awq_scales(x_mean, alpha)
        W_gate, W_up = (scaled_quantize(block.get_submodule(n).weight, s, SPEC).double() for n in group.linears)
        with torch.no_grad():
            out = block.mlp.down_proj(torch.nn.functional.silu(X @ W_gate.T) * (X @ W_up.T))
        ref = torch.cat([r.reshape(-1, 16) for r in reference])
        assert loss == pytest.approx(float(((out - ref) ** 2).mean()), rel=1e-9)
    assert result.alpha == grid[min(range(len(grid)), key=result.losses.__getitem__)]
    assert torch.allclose(result.scales, awq_scales(x_mean, result.alpha))


def test_scales_follow_eq2_and_protect_a_loud_channel():
    x_mean = torch.tensor([0.1, 1.0, 10.0, 1.0])
    s = awq_scales(x_mean, 0.5)
    assert torch.allclose(s, x_mean.sqrt() / (x_mean.sqrt().max() * x_mean.sqrt().min()).sqrt())
    assert torch.equal(awq_scales(x_mean, 0.0), torch.ones(4))
    # a weight column multiplied by its activation's scale is rounded more finely relative to itself
    torch.manual_seed(0)
    W = torch.randn(64, 8, dtype=torch.float64)
    x = torch.ones(8)
    x[3] = 30.0
    X = torch.randn(512, 8, dtype=torch.float64) * x
    err = lambda W_hat: float(((X @ (W - W_hat).T) ** 2).mean())
    spec = QuantSpec(3, 8)
    assert err(scaled_quantize(W, awq_scales(x, 0.5), spec).double()) < err(rtn_quantize(W, spec).double())


def test_clip_search_picks_each_rows_least_output_error():
    torch.manual_seed(0)
    W = torch.randn(6, 16, dtype=torch.float64)
    X = torch.randn(200, 16, dtype=torch.float64) * torch.linspace(0.2, 3, 16)
    H = 2 * X.T @ X / X.shape[0]
    ratios = clip_search(W, H, SPEC)
    assert ratios.shape == (6, 2)
    W_hat = rtn_quantize(W, SPEC, ratio=ratios).double()
    for g, cols in enumerate((slice(0, 8), slice(8, 16))):
        chosen = ((X[:, cols] @ (W[:, cols] - W_hat[:, cols]).T) ** 2).sum(0)           # (rows,) brute force
        for c in CLIP_GRID:
            Wc = quantize_dequantize(W[:, cols].float(), *fit_params(W[:, cols], SPEC, ratio=c), SPEC).double()
            other = ((X[:, cols] @ (W[:, cols] - Wc).T) ** 2).sum(0)
            assert torch.all(chosen <= other * (1 + 1e-6) + 1e-9), (g, c)
    assert bool((ratios < 1).any()), "at 3 bits some rows should gain from clipping"


def test_awq_whole_model_records_searches_and_changes_the_copy_only():
    model, tokens = _llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    q = quantize_model(model, tokens, "awq", SPEC, alpha_grid=(0.0, 0.5), progress=False)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert len(q.searches) == 2 * 4 and set(q.layer_errors) == {n for n, _ in linear_layers(model)}
    assert all(len(r.losses) == 2 for r in q.searches.values())


def test_salient_channels_and_keep():
    score = torch.tensor([0.1, 5.0, 0.3, 2.0, 0.2])
    assert salient_channels(score, 0.4).tolist() == [1, 3]
    assert salient_channels(score, 0.01).tolist() == [1]
    W = torch.randn(3, 5)
    kept = keep_channels(W, torch.zeros(3, 5), torch.tensor([1, 3]))
    assert torch.equal(kept[:, [1, 3]], W[:, [1, 3]]) and torch.equal(kept[:, [0, 2, 4]], torch.zeros(3, 3))


@pytest.mark.parametrize("call, match", [
    (lambda: awq_scales(torch.ones(4), 1.5), "alpha=1.5 must lie in"),
    (lambda: activation_mean(torch.ones(4)), "X must be a non-empty 2-D tensor"),
    (lambda: salient_channels(torch.ones(4), 0.0), "fraction=0.0"),
    (lambda: fit_params(torch.ones(2, 4), SPEC, ratio=1.5), "ratio=1.5"),
    (lambda: rtn_quantize(torch.ones(2, 16), SPEC, ratio=torch.ones(2, 3)), r"expected \(d_out, n_groups\)"),
    (lambda: clip_search(torch.ones(2, 16), torch.eye(8), SPEC), r"H has shape \(8, 8\)"),
    (lambda: scaled_quantize(torch.ones(2, 16), torch.ones(8), SPEC), "s \\(8,\\)"),
])
def test_bad_input_is_a_clear_error(call, match):
    with pytest.raises(CourseError, match=match):
        call()
