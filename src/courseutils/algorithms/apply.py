"""Quantize every linear layer of a model with RTN, GPTQ or AWQ, block by block (the plumbing).

The math lives in :mod:`.quantizer` (RTN), :mod:`.gptq` and :mod:`.awq`; this module walks the model:
for each decoder block (inputs from :func:`courseutils.calib.capture.capture_block_inputs`)
it accumulates each linear layer's Hessian ``H = 2 X^T X / n`` from one forward pass of the
block, quantizes the layers, and writes the weights back. The model passed in is copied,
never changed.

All linear layers of a block are calibrated on the same forward pass (the block's inputs
come from the already-quantized earlier blocks in ``"sequential"`` mode); GPTQ's reference
code calls quantizing inside a block in sub-steps "true sequential", which this skips.
``lm_head`` and the embeddings stay in full precision, as in the GPTQ paper.

AWQ in a block: one full-precision pass collects each layer's inputs (eq. 2's mean |x| and
H) and how the block calls each group's inspected module; each group's alpha is searched
on that module's output (:func:`.awq.search_scale`, every group against the unchanged block); the scales are folded; then every layer is
clipped (:func:`.awq.clip_search`, in the scaled basis, where ``H' = H / (s s^T)``) and
rounded. The reference AWQ code feeds each block full-precision inputs (``mode=
"independent"``); the default here, as for GPTQ, is ``"sequential"``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..calib.capture import capture_block_inputs, run_block
from ..calib.hessian import HessianAccumulator
from ..calib.hooks import LinearHooks, linear_layers
from ..core.errors import CourseError
from .awq import ALPHA_GRID, SKIP_CLIP, capture_calls, clip_search, fold_scales, scale_groups, search_scale
from .gptq import gptq_quantize, layer_error
from .quantizer import QuantSpec, rtn_quantize

__all__ = ["METHODS", "QuantizedModel", "quantize_model"]

METHODS = ("rtn", "gptq", "awq")


@dataclass
class QuantizedModel:
    """A fake-quantized copy of a model and what quantizing it measured.

    Attributes:
        model: the copy, with quantized-dequantized weights (same dtype as the original).
        method, spec, mode: how it was made.
        layer_errors: ``{layer name: tr(dW H dW^T)}``, the layer loss (see :func:`.gptq.layer_error`).
        searches: AWQ only: ``{"<block>.<prev>": ScaleSearch}``, each group's alpha search.
    """

    model: object
    method: str
    spec: QuantSpec
    mode: str
    layer_errors: dict = field(default_factory=dict)
    searches: dict = field(default_factory=dict)


def quantize_model(model, tokens, method: str = "gptq", spec: QuantSpec = QuantSpec(), mode: str = "sequential",
                   damp: float = 0.01, act_order: bool = False, static_groups: bool = False, batch_size: int = 8,
                   progress: bool = True, alpha_grid=ALPHA_GRID, clip: bool = True) -> QuantizedModel:
    """Quantize a copy of ``model`` with ``method`` ("rtn", "gptq" or "awq") on calibration ``tokens``.

    RTN needs no calibration; ``tokens`` are then used only to report the layer errors.
    ``damp``, ``act_order``, ``static_groups``: GPTQ's options. ``alpha_grid``, ``clip``:
    AWQ's (``alpha_grid=(0,)`` with ``clip=False`` is RTN).
    """
    import torch

    if method not in METHODS:
        raise CourseError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    qmodel = copy.deepcopy(model).eval()
    errors: dict[str, float] = {}
    prefix = {id(m): n for n, m in qmodel.named_modules()}
    if method == "awq":
        searches = {}
        for _, block, inputs in capture_block_inputs(qmodel, tokens, mode=mode, batch_size=batch_size,
                                                     progress=progress):
            block_errors, block_searches = _awq_block(block, inputs, spec, alpha_grid, clip)
            errors.update({f"{prefix[id(block)]}.{n}": e for n, e in block_errors.items()})
            searches.update({f"{prefix[id(block)]}.{n}": r for n, r in block_searches.items()})
        return QuantizedModel(qmodel, method, spec, mode, errors, searches)
    for _, block, inputs in capture_block_inputs(qmodel, tokens, mode=mode, batch_size=batch_size,
                                                 progress=progress):
        names = [n for n, _ in linear_layers(block)]
        # float32, as GPTQ's code keeps H (float64 is lesson 05's exact H, and slow here)
        acc = {n: HessianAccumulator(block.get_submodule(n).in_features, inputs.hidden[0].device,
                                     dtype=torch.float32) for n in names}
        with LinearHooks(block, names, on_forward=lambda n, X: acc[n].add_batch(X)):
            run_block(block, inputs)
        for n in names:
            linear = block.get_submodule(n)
            W, H = linear.weight.detach(), acc[n].H  # H = 2 X^T X / n
            if method == "gptq":
                W_hat = gptq_quantize(W, H, spec, damp=damp, act_order=act_order, static_groups=static_groups).W_hat
            else:
                W_hat = rtn_quantize(W, spec)
            errors[f"{prefix[id(block)]}.{n}"] = layer_error(W, W_hat, H)
            with torch.no_grad():
                linear.weight.copy_(W_hat.to(linear.weight.dtype))
    return QuantizedModel(qmodel, method, spec, mode, errors)


def _awq_block(block, inputs, spec: QuantSpec, alpha_grid, clip: bool) -> tuple[dict, dict]:
    """AWQ on one decoder block, in place: search, fold, clip, round.

    Returns ``({layer: error}, {prev: ScaleSearch})``.
    """
    import torch

    names = [n for n, _ in linear_layers(block)]
    device = inputs.hidden[0].device
    acc = {n: HessianAccumulator(block.get_submodule(n).in_features, device, dtype=torch.float32) for n in names}
    abs_sum = {n: 0.0 for n in names}
    count = {n: 0 for n in names}

    def collect(n, X):  # X: (N, d_in)
        acc[n].add_batch(X)
        abs_sum[n] = abs_sum[n] + X.float().abs().sum(dim=0)
        count[n] += X.shape[0]

    groups = scale_groups(block)
    with LinearHooks(block, names, on_forward=collect):
        calls = capture_calls(block, inputs, [g.inspect for g in groups])
    searches = {}
    for group in groups:  # every search sees the unchanged block
        x_mean = abs_sum[group.linears[0]] / count[group.linears[0]]  # activation_mean of the group's input
        searches[group.prev] = search_scale(block, group, calls[group.inspect], x_mean, spec, alpha_grid)
    scale_of = {}
    for result in searches.values():
        fold_scales(block, result.group, result.scales)
        scale_of.update({n: result.scales for n in result.group.linears})
    errors = {}
    for n in names:
        linear = block.get_submodule(n)
        W, H = linear.weight.detach().float(), acc[n].H
        if n in scale_of:  # the inputs were divided by s: H' = diag(1/s) H diag(1/s)
            s = scale_of[n].to(H.device)
            H = H / (s[:, None] * s[None, :])
        skip = any(n.endswith(k) for k in SKIP_CLIP)
        ratio = clip_search(W, H, spec) if clip and not skip else None
        W_hat = rtn_quantize(W, spec, ratio=ratio)
        errors[n] = layer_error(W, W_hat, H)
        with torch.no_grad():
            linear.weight.copy_(W_hat.to(linear.weight.dtype))
    return errors, searches
