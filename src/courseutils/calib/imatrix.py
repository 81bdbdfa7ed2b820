"""llama.cpp's importance matrix, computed from torch activations.

``llama-imatrix`` runs calibration text through the model and, for every weight matrix
``W`` (out × in) with input activations ``X`` (tokens × in), records

    imatrix_j = E_t[ X_tj² ]        (mean squared activation of input column j)

``llama_model_quantize`` then weights each column's rounding error by ``imatrix_j`` when it
searches for block scales. That is AWQ's activation proxy ``E‖X_j‖²`` (lesson 04 derives
it as the uniform-gradient special case of ``α_j``). Here the same statistic comes from
forward pre-hooks on the Hugging Face model, keyed by llama.cpp's tensor names.

The file format is the one ``llama-imatrix`` writes by default (a GGUF with
``general.type = "imatrix"``): for each matrix a tensor ``<name>.in_sum2`` holding the sum of
``x_j^2`` over the tokens seen, shape (1, d_in), and ``<name>.counts`` holding that number of
tokens, shape (1, 1); ``llama-quantize --imatrix`` divides one by the other.
:func:`write_imatrix` and :func:`read_imatrix` write and read it with gguf-py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import CourseError, GGUFError
from ..core.io import atomic_path
from ..llamacpp.bridge import check_imatrix_values

__all__ = ["compute_imatrix", "write_imatrix", "read_imatrix", "ImatrixFile"]


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


@dataclass
class ImatrixFile:
    """What an importance-matrix GGUF holds.

    Attributes:
        values: ``{tensor name: E[x_j^2]}`` (in_sum2 / counts in float32, as llama-quantize), (d_in,).
        counts: ``{tensor name: tokens seen}``.
        chunk_count, chunk_size: how many chunks of how many tokens produced it.
        datasets: the calibration text names recorded in the file.
    """

    values: dict
    counts: dict
    chunk_count: int
    chunk_size: int
    datasets: list = field(default_factory=list)


def write_imatrix(path: str | os.PathLike, imatrix: dict[str, np.ndarray], n_tokens: int, chunk_size: int,
                  datasets: tuple[str, ...] = ("calibration",)) -> Path:
    """Write ``{tensor name: E[x_j^2]}`` as the GGUF ``llama-imatrix`` writes (temp file, then rename).

    Args:
        imatrix: e.g. from :func:`compute_imatrix`.
        n_tokens: the tokens the means were taken over (stored as the counts).
        chunk_size: tokens per chunk (``n_ctx``); the chunk count is ``n_tokens // chunk_size``.
    """
    import gguf

    if not imatrix:
        raise CourseError("imatrix is empty: nothing to write")
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens <= 0:
        raise CourseError(f"n_tokens={n_tokens!r} must be a positive integer")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise CourseError(f"chunk_size={chunk_size!r} must be a positive integer")
    with atomic_path(path, "path") as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch="llama")
        writer.add_type(gguf.GGUFType.IMATRIX)
        writer.add_array(gguf.Keys.IMatrix.DATASETS, list(datasets))
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, n_tokens // chunk_size)
        writer.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, chunk_size)
        for name in sorted(imatrix):
            check_imatrix_values(name, imatrix[name])  # the same rule as quantize(imatrix=...)
            mean = np.asarray(imatrix[name], dtype=np.float64)
            writer.add_tensor(f"{name}.in_sum2", (mean * n_tokens).astype(np.float32)[None, :])
            writer.add_tensor(f"{name}.counts", np.array([[n_tokens]], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return Path(path)


def read_imatrix(path: str | os.PathLike) -> ImatrixFile:
    """Read an importance-matrix GGUF (ours or ``llama-imatrix``'s): means, counts, metadata."""
    import gguf

    p = Path(path)
    if not p.is_file():
        raise GGUFError(f"path={str(p)!r}: no such file")
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as exc:  # noqa: BLE001 - gguf-py raises ValueError, struct.error, ...
        raise GGUFError(f"path={str(p)!r} is not a readable GGUF file ({exc}); "
                        "an importance matrix in the old .dat format must be converted first") from exc

    def field_value(key, default=None):
        f = reader.get_field(key)
        return default if f is None else f.contents()

    if field_value(gguf.Keys.General.TYPE) != gguf.GGUFType.IMATRIX:
        raise GGUFError(f"path={str(p)!r} is a GGUF of general.type={field_value(gguf.Keys.General.TYPE)!r}, "
                        "not an importance matrix ('imatrix')")
    sums, counts = {}, {}
    for t in reader.tensors:
        if t.name.endswith(".in_sum2"):
            sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = float(np.asarray(t.data).reshape(-1)[0])
    if set(sums) != set(counts):
        raise GGUFError(f"path={str(p)!r}: sums and counts do not pair up for "
                        f"{sorted(set(sums) ^ set(counts))[:3]}")
    # float32 sum / float32 count, as llama-quantize divides (so both give the same bits)
    values = {n: sums[n] / np.float32(counts[n]) for n in sums if counts[n] > 0}
    return ImatrixFile(values, {n: int(round(c)) for n, c in counts.items()},
                       int(field_value(gguf.Keys.IMatrix.CHUNK_COUNT, 0)), int(field_value(gguf.Keys.IMatrix.CHUNK_SIZE, 0)),
                       list(field_value(gguf.Keys.IMatrix.DATASETS, []) or []))
