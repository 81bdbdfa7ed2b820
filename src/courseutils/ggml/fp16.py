"""The fp16 fields of GGML blocks (``ggml_half``: the scales ``d``, ``dmin``, ``m``), as bytes.

Every block format stores its scales as little-endian IEEE half floats; these two
helpers turn float32 values into those two bytes and back, exactly as llama.cpp's
``GGML_FP32_TO_FP16`` / ``GGML_FP16_TO_FP32`` do. They live apart from :mod:`.blocks`
(legacy formats, and the dispatch to every codec) and :mod:`.kquants` (K-quants)
because both use them: :mod:`.blocks` imports :mod:`.kquants`, never the reverse.
"""
from __future__ import annotations

import numpy as np

__all__ = ["f16_bytes", "f16_value"]


def f16_bytes(v: np.ndarray) -> np.ndarray:
    """float32 (n,) -> (n, 2) little-endian fp16 bytes (GGML_FP32_TO_FP16: round to nearest even)."""
    with np.errstate(over="ignore"):
        return np.asarray(v, np.float32).astype("<f2").view(np.uint8).reshape(-1, 2)


def f16_value(raw2: np.ndarray) -> np.ndarray:
    """(n, 2) fp16 bytes -> float32 (n,) (GGML_FP16_TO_FP32, exact)."""
    return np.ascontiguousarray(raw2).view("<f2").reshape(-1).astype(np.float32)
