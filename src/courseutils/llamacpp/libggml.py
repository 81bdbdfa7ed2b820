"""llama.cpp's own block quantizer and decoders, called in libggml through ctypes.

The oracle for :mod:`courseutils.ggml.blocks` and :mod:`courseutils.ggml.kquants`: the
C functions llama.cpp itself runs, from the ``libggml-base`` that llama-cpp-python ships.

- :func:`ggml_quantize` calls ``ggml_quantize_chunk`` (no importance matrix): what
  ``llama-quantize`` runs for every tensor;
- :func:`ggml_dequantize` calls ``dequantize_row_<type>`` (``ggml/src/ggml-quants.c``),
  e.g. ``dequantize_row_q6_K``.

Lesson 02 uses them to show a block decoded by hand is bit for bit what llama.cpp decodes;
``tests/test_blocks.py`` checks every block type against them.
"""
from __future__ import annotations

import ctypes
import functools
import pathlib

import numpy as np

from ..core.errors import CourseError, QuantTypeError

__all__ = ["ggml_quantize", "ggml_dequantize", "libggml_path"]


def libggml_path() -> pathlib.Path:
    """The ``libggml-base`` shared library inside the installed llama-cpp-python."""
    import llama_cpp

    libdir = pathlib.Path(llama_cpp.__file__).parent / "lib"
    found = sorted(libdir.glob("libggml-base.*")) + sorted(libdir.glob("ggml-base.*"))
    if not found:
        raise CourseError(f"libggml-base not found in {libdir}; llama-cpp-python's layout changed")
    return found[0]


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(libggml_path()))
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    return lib


def _sizes(qtype: str) -> tuple[int, int, int]:
    import gguf

    try:
        t = gguf.GGMLQuantizationType[qtype]
    except KeyError:
        raise QuantTypeError(f"qtype={qtype!r} is not a ggml type name such as 'Q6_K'") from None
    bs, ts = gguf.GGML_QUANT_SIZES[t]
    return int(t), bs, ts


def ggml_quantize(x: np.ndarray, qtype: str) -> np.ndarray:
    """Quantize rows of ``x`` (``(..., n)``, n a multiple of the block size) with llama.cpp.

    Returns uint8 ``(..., n // block_size * type_size)``, the bytes ``llama-quantize`` writes.
    """
    t, bs, ts = _sizes(qtype)
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim == 0 or x.shape[-1] % bs:
        raise CourseError(f"x has shape {x.shape}; its last axis must be a multiple of the {qtype} block size {bs}")
    nrow, n = x.reshape(-1, x.shape[-1]).shape
    out = np.zeros(nrow * (n // bs) * ts, np.uint8)
    written = _lib().ggml_quantize_chunk(t, x.ctypes.data, out.ctypes.data, 0, nrow, n, None)
    if written != out.size:
        raise CourseError(f"ggml_quantize_chunk wrote {written} bytes, expected {out.size} for {qtype}")
    return out.reshape(*x.shape[:-1], n // bs * ts)


def ggml_dequantize(raw: np.ndarray, qtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Decode ``raw`` block bytes with llama.cpp's ``dequantize_row_<qtype>``: float32 ``shape``."""
    _, bs, ts = _sizes(qtype)
    raw = np.ascontiguousarray(raw, np.uint8)
    n = int(np.prod(shape))
    if n % bs or raw.size != n // bs * ts:
        raise CourseError(f"shape {tuple(shape)} holds {n} weights but raw holds {raw.size} bytes "
                          f"({raw.size / ts:g} {qtype} blocks of {bs})")
    name = "dequantize_row_" + qtype.lower().replace("_k", "_K")
    fn = getattr(_lib(), name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    y = np.zeros(n, np.float32)
    fn(raw.ctypes.data, y.ctypes.data, y.size)
    return y.reshape(shape)
