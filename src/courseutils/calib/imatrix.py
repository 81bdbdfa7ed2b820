"""llama.cpp's importance matrix, computed from torch activations.

``llama-imatrix`` runs calibration text through the model and, for every weight matrix
``W`` (out × in) with input activations ``X`` (tokens × in), records

    imatrix_j = E_t[ X_tj² ]        (mean squared activation of input column j)

``llama_model_quantize`` then weights each column's rounding error by ``imatrix_j`` when it
searches for block scales. That is AWQ's activation proxy ``E‖X_j‖²`` (lesson 04 derives
it as the uniform-gradient special case of ``α_j``). Here the same statistic comes from
forward pre-hooks on the Hugging Face model, keyed by llama.cpp's tensor names.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import CourseError

__all__ = ["compute_imatrix"]


def compute_imatrix(model="tinycode", text: str | None = None, n_ctx: int = 256, n_chunks: int = 16,
                    device: str | None = None, progress: bool = False) -> dict[str, np.ndarray]:
    """``{llama.cpp tensor name: E[x_j^2] over calibration tokens}`` for every linear layer.

    Args:
        model: a model reference for :func:`courseutils.model.load_model`, or a loaded
            ``(model, tokenizer)`` pair.
        text: calibration text (default: tinycode's calibration split).
        n_ctx, n_chunks: the text is cut into ``n_chunks`` sequences of ``n_ctx`` tokens.
    """
    import torch
    from tqdm.auto import tqdm

    from ..model.corpus import corpus_text
    from ..ggml.gguf_export import gguf_tensor_name
    from .hooks import LinearHooks, linear_layers, model_device
    from ..numerics.metrics import make_chunks
    from ..model.loader import load_model
    from ..model.train import encode

    hf, tokenizer = model if isinstance(model, tuple) else load_model(model, device=device)
    text = corpus_text("calibration") if text is None else text
    if not text.strip():
        raise CourseError("text is empty: the importance matrix needs calibration text")
    chunks = make_chunks(encode(tokenizer, text), n_ctx, tokenizer.bos_token_id, n_chunks)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def accumulate(name, X):  # X: (tokens, in)
        sums[name] = sums.get(name, 0) + (X * X).sum(0)
        counts[name] = counts.get(name, 0) + X.shape[0]

    names = [n for n, _ in linear_layers(hf, include=["model.layers."])]
    device_ = model_device(hf)
    with LinearHooks(hf, names, on_forward=accumulate), torch.no_grad():
        for chunk in tqdm(chunks, desc="imatrix", disable=not progress):
            hf(input_ids=torch.as_tensor(chunk[None], device=device_))
    # keys: llama.cpp's tensor names (model.layers.0.mlp.up_proj -> blk.0.ffn_up.weight)
    return {gguf_tensor_name(name + ".weight"): (sums[name] / counts[name]).cpu().numpy().astype(np.float32)
            for name in sums}
