"""courseutils.llamacpp.libggml: llama.cpp's C block codecs through ctypes, checked two ways.

The ctypes wrapper is itself an oracle for the numpy codecs, so it is checked against
independent paths: llama-quantize's own output (the tinycode GGUF files, written through
``llama_model_quantize``, not through this wrapper) and gguf-py's numpy decoders.
"""
from __future__ import annotations

import gguf
import numpy as np
import pytest

from courseutils.core.errors import CourseError, QuantTypeError
from courseutils.llamacpp import libggml


@pytest.fixture(scope="module")
def q4_k_m_tensors():
    from courseutils.ggml.blocks import dequantize
    from courseutils.ggml.ggufinfo import read_tensors
    from courseutils.llamacpp import get_gguf

    src = read_tensors(get_gguf("tinycode", "F16"))
    out = read_tensors(get_gguf("tinycode", "Q4_K_M"))
    return {n: (dequantize(*src[n][:2], shape), raw, qt, shape) for n, (raw, qt, shape) in out.items() if len(shape) == 2}


def test_quantize_reproduces_llama_quantize_files(q4_k_m_tensors):
    seen = set()
    for name, (x, raw, qtype, shape) in q4_k_m_tensors.items():
        assert np.array_equal(libggml.ggml_quantize(x, qtype).reshape(raw.shape), raw), name
        seen.add(qtype)
    assert {"Q4_K", "Q6_K"} <= seen


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_K", "Q6_K"])
def test_dequantize_agrees_with_gguf_py(qtype):
    x = (np.random.default_rng(0).standard_normal((4, 512)) * 0.05).astype(np.float32)
    raw = libggml.ggml_quantize(x, qtype)
    y = libggml.ggml_dequantize(raw, qtype, x.shape)
    ref = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]).reshape(x.shape).astype(np.float32)
    assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))
    assert np.abs(y - x).max() < 0.1 * np.abs(x).max()  # and it is a decoding of x, not noise


def test_bad_inputs_name_the_sizes():
    with pytest.raises(QuantTypeError, match="Q4_K_M"):
        libggml.ggml_quantize(np.zeros((1, 256), np.float32), "Q4_K_M")
    with pytest.raises(CourseError, match="multiple of the Q6_K block size 256"):
        libggml.ggml_quantize(np.zeros((1, 100), np.float32), "Q6_K")
    with pytest.raises(CourseError, match="holds 256 weights but raw holds 100 bytes"):
        libggml.ggml_dequantize(np.zeros(100, np.uint8), "Q6_K", (256,))
