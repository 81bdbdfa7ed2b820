"""courseutils.ggml.blocks / kquants against llama.cpp itself (libggml and its files) and gguf-py.

Three oracles:
- libggml's own C quantizer, ``ggml_quantize_chunk`` and ``dequantize_row_*``, called
  through ctypes from the library llama-cpp-python ships;
- the GGUF files llama.cpp's quantizer writes for tinycode (``courseutils.llamacpp``);
- gguf-py's numpy (de)quantizers.
"""
from __future__ import annotations

import platform

import gguf
import numpy as np
import pytest

from courseutils.ggml import blocks
from courseutils.core.errors import CourseError, QuantTypeError

BLOCK_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
GGUF_PY_QUANTIZES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "BF16", "F16"]


@pytest.fixture(scope="module")
def libggml():
    """llama.cpp's C quantizer and decoders (courseutils.llamacpp.libggml, through ctypes)."""
    from courseutils.llamacpp import libggml as lg

    lg.libggml_path()  # fails clearly when llama-cpp-python's layout changed
    return lg


def ggml_quantize(lib, x: np.ndarray, qtype: str) -> np.ndarray:
    """llama.cpp's quantizer (no imatrix): what llama-quantize runs for every tensor."""
    return lib.ggml_quantize(x, qtype)


def ggml_dequantize(lib, raw: np.ndarray, qtype: str, shape) -> np.ndarray:
    return lib.ggml_dequantize(raw, qtype, shape)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 512
    rows = {
        "normal": rng.standard_normal((24, n)) * rng.uniform(0.005, 2, (24, 1)),
        "fp16 weights": (rng.standard_normal((8, n)) * 0.02).astype(np.float16),
        "heavy tails": rng.standard_t(2, (8, n)),
        "all zeros": np.zeros((2, n)),
        "constant": np.full((2, n), 0.37),
        "negative constant": np.full((2, n), -1.5),
        "one huge outlier": np.where(np.arange(n) == 77, 1e4, rng.standard_normal((2, n))),
        "tiny": rng.standard_normal((2, n)) * 1e-30,
        "positive only": rng.uniform(1, 2, (2, n)),
        "sparse": np.where(rng.random((4, n)) < 0.03, rng.standard_normal((4, n)), 0.0),
        "small integers": rng.integers(-8, 8, (4, n)),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}


@pytest.mark.parametrize("qtype", BLOCK_TYPES)
def test_quantize_and_dequantize_bit_exact_against_libggml(libggml, qtype):
    for label, x in _cases().items():
        ref = ggml_quantize(libggml, x, qtype)
        mine = blocks.quantize(x, qtype)
        assert np.array_equal(mine, ref), f"{qtype} bytes differ on {label!r} ({int((mine != ref).sum())} bytes)"
        y_ref = ggml_dequantize(libggml, ref, qtype, x.shape)
        assert _same_bits(blocks.dequantize(ref, qtype, x.shape), y_ref), f"{qtype} values differ on {label!r}"


@pytest.mark.parametrize("qtype", BLOCK_TYPES)
def test_subnormal_inputs(libggml, qtype):
    x = (np.random.default_rng(1).standard_normal((2, 256)) * 1e-39).astype(np.float32)
    ref = ggml_quantize(libggml, x, qtype)
    mine = blocks.quantize(x, qtype)
    # the scale underflows to fp16 zero, so every weight decodes to 0 on any machine ...
    assert np.all(blocks.dequantize(mine, qtype, x.shape) == 0)
    assert _same_bits(blocks.dequantize(mine, qtype, x.shape), ggml_dequantize(libggml, ref, qtype, x.shape))
    # ... and the bytes of the (meaningless) codes match llama.cpp built for the same CPU
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert np.array_equal(mine, ref)


@pytest.mark.parametrize("qtype", GGUF_PY_QUANTIZES)
def test_quantize_matches_gguf_py(qtype):
    for label, x in _cases().items():
        expected = gguf.quants.quantize(x, gguf.GGMLQuantizationType[qtype]).view(np.uint8).reshape(x.shape[0], -1)
        assert np.array_equal(blocks.quantize(x, qtype), expected), f"{qtype} differs from gguf-py on {label!r}"


@pytest.mark.parametrize("qtype", BLOCK_TYPES + ["BF16", "F16"])
def test_dequantize_matches_gguf_py(libggml, qtype):
    x = _cases()["normal"]
    raw = ggml_quantize(libggml, x, qtype) if qtype in BLOCK_TYPES else blocks.quantize(x, qtype)
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype])
    assert _same_bits(blocks.dequantize(raw, qtype, x.shape), expected.reshape(x.shape))


@pytest.fixture(scope="module")
def tinycode_files():
    from courseutils.llamacpp import get_gguf

    # together these files hold every block type: Q3_K_M mixes Q3_K, Q4_K, Q5_K and Q6_K
    return {q: get_gguf("tinycode", q) for q in ("F16", "Q8_0", "Q4_0", "Q3_K_M", "Q2_K")}


@pytest.mark.slow
def test_every_tensor_of_llamacpp_files_bit_exact(tinycode_files):
    """Quantize tinycode's F16 weights ourselves: every tensor equals llama-quantize's bytes."""
    from courseutils.ggml.ggufinfo import read_tensors

    source = read_tensors(tinycode_files["F16"])
    seen = set()
    for label, path in tinycode_files.items():
        if label == "F16":
            continue
        for name, (raw, qtype, shape) in read_tensors(path).items():
            w, src_type, _ = source[name]
            x = blocks.dequantize(w, src_type, shape)  # F16/F32 source -> float32, as llama.cpp reads it
            assert np.array_equal(blocks.quantize(x, qtype).reshape(raw.shape), raw), f"{label}: {name} ({qtype})"
            y = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[qtype]).reshape(shape)
            assert _same_bits(blocks.dequantize(raw, qtype, shape), y.astype(np.float32)), f"{label}: {name}"
            seen.add(qtype)
    assert {"Q8_0", "Q4_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"} <= seen, seen


def test_bits_per_weight_from_layout_matches_ggml_sizes():
    for name, layout in blocks.LAYOUTS.items():
        bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]]
        assert (layout.block_size, layout.type_size) == (bs, ts), name
        assert blocks.bits_per_weight(name) == 8 * ts / bs
    assert blocks.row_bytes(512, "Q4_K") == 2 * 144


def test_split_fields_decodes_q8_0_scale():
    x = np.linspace(-3, 1, 64, dtype=np.float32).reshape(1, 64)
    f = blocks.split_fields(blocks.quantize(x, "Q8_0"), "Q8_0")
    assert f["d"].shape == (2, 1) and f["qs"].shape == (2, 32)
    np.testing.assert_array_equal(f["d"][:, 0], (np.abs(x.reshape(2, 32)).max(axis=1) / 127).astype(np.float16))
    assert f["qs"].dtype == np.int8 and np.abs(f["qs"]).max() == 127


def test_error_falls_as_bits_rise():
    x = np.random.default_rng(2).standard_normal((32, 512)).astype(np.float32)
    order = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0"]
    mse = [float(np.mean((blocks.dequantize(blocks.quantize(x, q), q, x.shape) - x) ** 2)) for q in order]
    assert all(a > b for a, b in zip(mse, mse[1:])), dict(zip(order, mse))
    assert [blocks.bits_per_weight(q) for q in order] == sorted(blocks.bits_per_weight(q) for q in order)


def test_bad_inputs_raise_clear_errors():
    x = np.zeros((2, 64), np.float32)
    with pytest.raises(CourseError, match=r"shape \(2, 100\).*multiple of the Q4_K block size 256"):
        blocks.quantize(np.zeros((2, 100), np.float32), "Q4_K")
    with pytest.raises(CourseError, match="NaN or inf"):
        blocks.quantize(np.where(np.arange(64) == 3, np.nan, 0).astype(np.float32), "Q8_0")
    with pytest.raises(CourseError, match="NaN or inf"):
        blocks.quantize(np.full(32, np.inf, np.float32), "Q4_0")
    with pytest.raises(CourseError, match="dtype int32"):
        blocks.quantize(x.astype(np.int32), "Q8_0")
    with pytest.raises(CourseError, match="numpy array"):
        blocks.quantize([0.0] * 32, "Q8_0")
    with pytest.raises(QuantTypeError, match="qtype='Q4_K_M'.*allowed"):
        blocks.quantize(x, "Q4_K_M")
    with pytest.raises(CourseError, match="fp16"):
        blocks.quantize(np.full(32, 1e7, np.float32), "Q4_0")
    raw = blocks.quantize(x, "Q8_0")
    with pytest.raises(CourseError, match="holds 64 weights but data holds 4 Q8_0 blocks"):
        blocks.dequantize(raw, "Q8_0", (8, 8))
    with pytest.raises(CourseError, match="not a positive multiple"):
        blocks.dequantize(raw.reshape(-1)[:30], "Q8_0", (32,))
    assert blocks.dequantize(raw, "Q8_0").shape == (2, 64)
