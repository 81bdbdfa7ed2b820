"""The inputs of each decoder block, block by block: what layer-wise quantizers calibrate on.

GPTQ and AWQ quantize a model one decoder block at a time. Block ``i`` needs the hidden
states that enter it, on the calibration text. There are two choices (lesson 09 compares
them):

- ``"sequential"`` (what GPTQ and AWQ do): the inputs of block ``i`` are the outputs of
  blocks ``0..i-1`` *as already quantized*, so each block corrects for the error that
  reaches it;
- ``"independent"``: the inputs of every block come from the full-precision model, as if
  each block were quantized alone.

:func:`capture_block_inputs` is a generator: it yields ``(i, block, inputs)``; the caller
changes the block's weights (quantizes them) and hands control back; the generator then
runs the block to make the next block's inputs, after the change (sequential) or from
outputs computed before it (independent).

Shapes: ``inputs.hidden`` is a list with one ``(batch, T, d_model)`` tensor per batch;
``inputs.kwargs`` the keyword arguments the model passed to the block for that batch
(attention mask, rotary position embeddings, ...), reused as they are.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..core.errors import CourseError, ModelError
from .hooks import iter_batches, model_device

__all__ = ["BlockInputs", "decoder_blocks", "run_block", "capture_block_inputs", "MODES"]

MODES = ("sequential", "independent")


@dataclass
class BlockInputs:
    """What enters one decoder block, per calibration batch."""

    hidden: list  # [(batch, T, d_model)] per batch
    kwargs: list  # [dict] per batch: the block's keyword arguments

    @property
    def n_tokens(self) -> int:
        return sum(h.shape[0] * h.shape[1] for h in self.hidden)


def decoder_blocks(model) -> list:
    """The decoder blocks of a Llama-style model (``model.model.layers``), in order."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or len(layers) == 0:
        raise ModelError(f"{type(model).__name__} has no model.layers: a Llama-architecture model is expected")
    return list(layers)


class _Stop(Exception):
    """Raised from the first block's pre-hook: nothing after it needs to run."""


def _first_block_inputs(model, tokens, batch_size: int, progress: bool) -> BlockInputs:
    import torch

    first = decoder_blocks(model)[0]
    hidden, kwargs = [], []

    def grab(module, args, kw):
        hidden.append(args[0].detach() if args else kw.pop("hidden_states").detach())
        kwargs.append({k: v for k, v in kw.items() if k != "hidden_states"})
        raise _Stop

    handle = first.register_forward_pre_hook(grab, with_kwargs=True)
    device = model_device(model)
    try:
        with torch.no_grad():
            for batch in iter_batches(tokens, batch_size, "block 0 inputs", progress):
                try:
                    model(input_ids=batch.to(device), use_cache=False)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return BlockInputs(hidden, kwargs)


def run_block(block, inputs: BlockInputs) -> list:
    """The block's outputs for every batch of ``inputs``: ``[(batch, T, d_model)]``."""
    import torch

    outputs = []
    with torch.no_grad():
        for h, kw in zip(inputs.hidden, inputs.kwargs):
            out = block(h, **kw)
            outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


def capture_block_inputs(model, tokens, mode: str = "sequential", batch_size: int = 8,
                         progress: bool = True) -> Iterator[tuple[int, object, BlockInputs]]:
    """Yield ``(i, block, inputs)`` for every decoder block, in order (see the module docstring).

    Args:
        model: a Llama-architecture ``*ForCausalLM``; its blocks may be changed in place by
            the caller between yields.
        tokens: calibration token ids, (n_seq, T).
        mode: ``"sequential"`` or ``"independent"``.
    """
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise CourseError(f"mode={mode!r}; allowed: {', '.join(MODES)}")
    inputs = _first_block_inputs(model, tokens, batch_size, progress=False)
    blocks = decoder_blocks(model)
    for i, block in enumerate(tqdm(blocks, desc=f"blocks ({mode})", disable=not progress)):
        before = run_block(block, inputs) if mode == "independent" else None
        yield i, block, inputs
        outputs = before if before is not None else run_block(block, inputs)
        inputs = BlockInputs(outputs, inputs.kwargs)
