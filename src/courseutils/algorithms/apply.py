"""Quantize every linear layer of a model with RTN or GPTQ, block by block (the plumbing).

The math lives in :mod:`.quantizer` (RTN) and :mod:`.gptq`; this module walks the model:
for each decoder block (inputs from :func:`courseutils.calib.capture.capture_block_inputs`)
it accumulates each linear layer's Hessian ``H = 2 X^T X / n`` from one forward pass of the
block, quantizes the layers, and writes the weights back. The model passed in is copied,
never changed.

All linear layers of a block are calibrated on the same forward pass (the block's inputs
come from the already-quantized earlier blocks in ``"sequential"`` mode); GPTQ's reference
code calls quantizing inside a block in sub-steps "true sequential", which this skips.
``lm_head`` and the embeddings stay in full precision, as in the GPTQ paper.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..calib.capture import capture_block_inputs, run_block
from ..calib.hessian import HessianAccumulator
from ..calib.hooks import LinearHooks, linear_layers
from ..core.errors import CourseError
from .gptq import gptq_quantize, layer_error
from .quantizer import QuantSpec, rtn_quantize

__all__ = ["METHODS", "QuantizedModel", "quantize_model"]

METHODS = ("rtn", "gptq")


@dataclass
class QuantizedModel:
    """A fake-quantized copy of a model and what quantizing it measured.

    Attributes:
        model: the copy, with quantized-dequantized weights (same dtype as the original).
        method, spec, mode: how it was made.
        layer_errors: ``{layer name: tr(dW H dW^T)}``, the layer loss (see :func:`.gptq.layer_error`).
    """

    model: object
    method: str
    spec: QuantSpec
    mode: str
    layer_errors: dict = field(default_factory=dict)


def quantize_model(model, tokens, method: str = "gptq", spec: QuantSpec = QuantSpec(), mode: str = "sequential",
                   damp: float = 0.01, act_order: bool = False, static_groups: bool = False, batch_size: int = 8,
                   progress: bool = True) -> QuantizedModel:
    """Quantize a copy of ``model`` with ``method`` ("rtn" or "gptq") on calibration ``tokens``.

    RTN needs no calibration; ``tokens`` are then used only to report the layer errors.
    """
    import torch

    if method not in METHODS:
        raise CourseError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    qmodel = copy.deepcopy(model).eval()
    errors: dict[str, float] = {}
    prefix = {id(m): n for n, m in qmodel.named_modules()}
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
