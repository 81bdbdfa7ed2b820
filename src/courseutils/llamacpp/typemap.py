"""Which ggml type llama.cpp's quantizer gives each tensor of a model, asked of llama.cpp itself.

A file type such as Q4_K_M is a mix: llama.cpp picks a type per tensor from its role,
layer index, the layer count and the head ratio, never from its values. So quantizing a
*skeleton* GGUF (:func:`courseutils.ggml.ggufinfo.skeleton_gguf`: the real depth and
names, tiny matrices) shows in a second the types the full model would get, and
:func:`courseutils.ggml.ggufinfo.estimate_bpw` turns them into its size (lesson 02).

This sits in the llamacpp layer, above ``ggml``, because it runs llama.cpp's quantizer.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..core.config import cache_dir
from ..core.io import atomic_path
from ..ggml.ggufinfo import LlamaShape, read_gguf, skeleton_gguf
from .bridge import quantize

__all__ = ["llama_type_map"]


def llama_type_map(cfg: LlamaShape, qtype: str) -> dict[str, str]:
    """Tensor name -> ggml type that llama.cpp's ``qtype`` mix gives a model shaped like ``cfg``.

    Quantizes :func:`~courseutils.ggml.ggufinfo.skeleton_gguf` with llama.cpp (no importance
    matrix) and reads the types back; the result is cached in ``COURSE_CACHE`` per
    llama-cpp-python version.
    """
    import llama_cpp

    key = f"{llama_cpp.__version__}-{cfg.name}-{cfg.n_layer}-{cfg.n_head}-{cfg.n_kv_head}-{cfg.tied}-{qtype}"
    cache = cache_dir() / "type_maps.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if key in known:
        return known[key]
    with tempfile.TemporaryDirectory() as tmp:
        src = skeleton_gguf(cfg, Path(tmp) / "skeleton-F16.gguf")
        out = quantize(src, Path(tmp) / f"skeleton-{qtype}.gguf", qtype)  # quiet: llama.cpp's log is silenced
        types = {t.name: t.qtype for t in read_gguf(out).tensors}
    known = json.loads(cache.read_text()) if cache.exists() else {}
    known[key] = types
    with atomic_path(cache) as tmp_cache:
        tmp_cache.write_text(json.dumps(known, indent=1))
    return types
