"""llama.cpp's block quantization formats, written out in numpy (lesson 02).

A GGUF tensor of type Q8_0, Q4_K, ... is a sequence of fixed-size *blocks*; each block
holds ``block_size`` consecutive weights of one row as small integers plus the scale(s)
needed to turn them back into numbers. The layouts below are data: the fields of each
C struct in ``ggml/src/ggml-common.h``, in storage order. Everything else follows from
them, including the bits per weight: ``bpw = 8 * type_size / block_size``.

This module holds the layout table, the public ``quantize`` / ``dequantize`` and the
"legacy" 32-weight formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1). The 256-weight K-quant
super-blocks (Q2_K ... Q6_K) and their scale searches live in :mod:`courseutils.ggml.kquants`.
Every function names the C function in ``ggml/src/ggml-quants.c`` it mirrors; the tests
prove the bytes identical to llama.cpp's (libggml) and gguf-py's.

Conventions: ``blocks`` arrays are (n_blocks, block_size) float32 weights, ``raw``
arrays are (n_blocks, type_size) uint8 bytes. All arithmetic is float32 in the C
order of operations, so results agree bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.errors import CourseError, QuantTypeError
from . import kquants
from .fp16 import f16_bytes, f16_value

__all__ = [
    "BlockLayout",
    "LAYOUTS",
    "QK_K",
    "block_layout",
    "bits_per_weight",
    "row_bytes",
    "split_fields",
    "quantize",
    "dequantize",
    "quant_types",
]

QK_K = 256  # weights per K-quant super-block
_FIELD_BYTES = {"f16": 2, "u8": 1, "i8": 1, "f32": 4, "bf16": 2}
_FIELD_VIEW = {"f16": "<f2", "u8": np.uint8, "i8": np.int8, "f32": "<f4", "bf16": "<u2"}  # bf16: raw bits


@dataclass(frozen=True)
class BlockLayout:
    """One block type: how many weights a block holds and its fields in storage order."""

    name: str
    block_size: int  # weights per block
    fields: tuple[tuple[str, str, int], ...]  # (field, element kind, count), as in the C struct
    c_struct: str  # the struct in ggml-common.h

    @property
    def type_size(self) -> int:
        """Bytes per block: the sum of the fields."""
        return sum(_FIELD_BYTES[kind] * count for _, kind, count in self.fields)

    @property
    def bpw(self) -> float:
        """Bits per weight, 8 * type_size / block_size."""
        return 8 * self.type_size / self.block_size

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Byte range [start, stop) of every field inside one block."""
        out, pos = {}, 0
        for name, kind, count in self.fields:
            out[name] = (pos, pos + _FIELD_BYTES[kind] * count)
            pos += _FIELD_BYTES[kind] * count
        return out


LAYOUTS: dict[str, BlockLayout] = {layout.name: layout for layout in (
    BlockLayout("F32", 1, (("x", "f32", 1),), "float"),
    BlockLayout("F16", 1, (("x", "f16", 1),), "ggml_half"),
    BlockLayout("BF16", 1, (("x", "bf16", 1),), "ggml_bf16_t"),
    # -- legacy: 32 weights, one scale (and maybe a minimum) per block ------------------
    BlockLayout("Q8_0", 32, (("d", "f16", 1), ("qs", "i8", 32)), "block_q8_0"),
    BlockLayout("Q4_0", 32, (("d", "f16", 1), ("qs", "u8", 16)), "block_q4_0"),
    BlockLayout("Q4_1", 32, (("d", "f16", 1), ("m", "f16", 1), ("qs", "u8", 16)), "block_q4_1"),
    BlockLayout("Q5_0", 32, (("d", "f16", 1), ("qh", "u8", 4), ("qs", "u8", 16)), "block_q5_0"),
    BlockLayout("Q5_1", 32, (("d", "f16", 1), ("m", "f16", 1), ("qh", "u8", 4), ("qs", "u8", 16)),
                "block_q5_1"),
    # -- K-quants: 256 weights in 8 or 16 sub-blocks whose scales are quantized too -----
    BlockLayout("Q2_K", QK_K, (("scales", "u8", 16), ("qs", "u8", 64), ("d", "f16", 1), ("dmin", "f16", 1)),
                "block_q2_K"),
    BlockLayout("Q3_K", QK_K, (("hmask", "u8", 32), ("qs", "u8", 64), ("scales", "u8", 12), ("d", "f16", 1)),
                "block_q3_K"),
    BlockLayout("Q4_K", QK_K, (("d", "f16", 1), ("dmin", "f16", 1), ("scales", "u8", 12), ("qs", "u8", 128)),
                "block_q4_K"),
    BlockLayout("Q5_K", QK_K, (("d", "f16", 1), ("dmin", "f16", 1), ("scales", "u8", 12), ("qh", "u8", 32),
                               ("qs", "u8", 128)), "block_q5_K"),
    BlockLayout("Q6_K", QK_K, (("ql", "u8", 128), ("qh", "u8", 64), ("scales", "i8", 16), ("d", "f16", 1)),
                "block_q6_K"),
)}


def quant_types() -> list[str]:
    """The tensor types this module can quantize and dequantize."""
    return list(LAYOUTS)


def block_layout(qtype: str) -> BlockLayout:
    """The :class:`BlockLayout` of ``qtype`` (e.g. ``"Q4_K"``)."""
    key = str(getattr(qtype, "name", qtype)).upper()
    if key not in LAYOUTS:
        raise QuantTypeError(f"qtype={qtype!r} is not a block type implemented here; allowed: {list(LAYOUTS)}")
    return LAYOUTS[key]


def bits_per_weight(qtype: str) -> float:
    """Bits per weight of a tensor type, from its block layout: 8 * bytes / weights."""
    return block_layout(qtype).bpw


def row_bytes(n: int, qtype: str) -> int:
    """Bytes of a row of ``n`` weights (``n`` must be a multiple of the block size)."""
    layout = block_layout(qtype)
    if n % layout.block_size:
        raise CourseError(f"n={n} is not a multiple of the {layout.name} block size {layout.block_size}")
    return n // layout.block_size * layout.type_size


def split_fields(data: np.ndarray, qtype: str) -> dict[str, np.ndarray]:
    """Cut quantized bytes into their named fields, one row per block (f16 fields decoded)."""
    layout = block_layout(qtype)
    raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, layout.type_size)
    kinds = {name: kind for name, kind, _ in layout.fields}
    out = {}
    for name, (a, b) in layout.offsets().items():
        out[name] = np.ascontiguousarray(raw[:, a:b]).view(_FIELD_VIEW[kinds[name]])
    return out


# ---------------------------------------------------------------- small helpers
def _argmax_abs_signed(blocks: np.ndarray) -> np.ndarray:
    """The value of largest magnitude per row, keeping its sign; the first one on ties (C's ``>``)."""
    i = np.abs(blocks).argmax(axis=1)
    return blocks[np.arange(blocks.shape[0]), i]


def _inverse(d: np.ndarray) -> np.ndarray:
    """``id = d ? 1.0f/d : 0.0f``."""
    with np.errstate(divide="ignore"):
        return np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)


def _roundf(v: np.ndarray) -> np.ndarray:
    """C ``roundf``: halves away from zero (numpy's ``rint`` would round them to even).

    Done in float64, where |v| + 0.5 is exact for any float32 v (in float32 it is not:
    0.49999997 + 0.5 would round up to 1).
    """
    v = v.astype(np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _c_cast(v: np.ndarray, dtype) -> np.ndarray:
    """A C cast ``(int8_t)v`` / ``(uint8_t)v``: truncate toward zero.

    For ordinary values that is all. When a block's scale underflows (all |x| < ~1e-38),
    ``1/d`` is inf and C converts inf/NaN to an integer, which the C standard leaves
    undefined; numpy's cast compiles to the same machine instruction, so the bytes match
    llama.cpp on the same CPU. (The decoded weights are 0 either way: d rounds to fp16 0.)
    """
    with np.errstate(invalid="ignore"):
        return v.astype(dtype)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """(n, 32) values 0..15 -> (n, 16) bytes: byte j = q[j] | q[j + 16] << 4 (halves, not neighbours)."""
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def _unpack_nibbles(qs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_pack_nibbles`: (n, 16) bytes -> (n, 32) values 0..15."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _pack_qh(q: np.ndarray) -> np.ndarray:
    """(n, 32) 5-bit values -> (n, 4) bytes: bit j of the little-endian uint32 is bit 4 of q[j]."""
    bits = ((q >> 4) & 1).astype(np.uint32)
    qh = (bits << np.arange(32, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    return qh.astype("<u4").view(np.uint8).reshape(-1, 4)


def _unpack_qh(qh: np.ndarray) -> np.ndarray:
    """(n, 4) bytes -> (n, 32) fifth bits, already shifted to value 16 or 0."""
    word = np.ascontiguousarray(qh).view("<u4").reshape(-1, 1)
    return (((word >> np.arange(32, dtype=np.uint32)) & 1) << 4).astype(np.uint8)


def _check_scales(d: np.ndarray, qtype: str) -> None:
    if not np.all(np.isfinite(f16_value(f16_bytes(d)))):
        raise CourseError(f"x has values too large for {qtype}: a block scale overflows fp16 "
                          f"(largest |scale| {float(np.abs(d).max()):.4g} > 65504)")


# ---------------------------------------------------------------- Q8_0
# block_q8_0 (34 bytes):  | d: fp16 | qs[0..31]: int8 |        w_j = d * qs[j]
def _quantize_q8_0(blocks: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q8_0_ref: d = max|x| / 127, qs = roundf(x / d)."""
    amax = np.abs(blocks).max(axis=1)  # (n,)
    d = (amax / np.float32(127)).astype(np.float32)
    _check_scales(d, "Q8_0")
    qs = _c_cast(_roundf(blocks * _inverse(d)[:, None]), np.int8)  # x * id, as in C
    return np.concatenate([f16_bytes(d), qs.view(np.uint8)], axis=1)


def _dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q8_0: y = qs * d."""
    d = f16_value(raw[:, 0:2])[:, None]
    return raw[:, 2:].view(np.int8).astype(np.float32) * d


# ---------------------------------------------------------------- Q4_0
# block_q4_0 (18 bytes):  | d: fp16 | qs[0..15]: two 4-bit codes per byte |
#   byte j = q[j] (low nibble) | q[j+16] (high nibble);   w_j = d * (q_j - 8)
def _quantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q4_0_ref: d = max / -8 (signed max), q = min(15, trunc(x/d + 8.5))."""
    d = (_argmax_abs_signed(blocks) / np.float32(-8)).astype(np.float32)  # the extreme maps to code 0
    _check_scales(d, "Q4_0")
    q = np.minimum(15, _c_cast(blocks * _inverse(d)[:, None] + np.float32(8.5), np.int8)).astype(np.uint8)
    return np.concatenate([f16_bytes(d), _pack_nibbles(q)], axis=1)


def _dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q4_0: y = (q - 8) * d."""
    d = f16_value(raw[:, 0:2])[:, None]
    return (_unpack_nibbles(raw[:, 2:]).astype(np.int8) - 8).astype(np.float32) * d


# ---------------------------------------------------------------- Q4_1
# block_q4_1 (20 bytes):  | d: fp16 | m: fp16 | qs[0..15] |         w_j = d * q_j + m
def _quantize_q4_1(blocks: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q4_1_ref: d = (max - min) / 15, q = min(15, trunc((x - min)/d + 0.5))."""
    mn, mx = blocks.min(axis=1), blocks.max(axis=1)
    d = ((mx - mn) / np.float32(15)).astype(np.float32)
    _check_scales(np.concatenate([d, mn]), "Q4_1")
    q = _c_cast((blocks - mn[:, None]) * _inverse(d)[:, None] + np.float32(0.5), np.int8)
    q = np.minimum(15, q).astype(np.uint8)
    return np.concatenate([f16_bytes(d), f16_bytes(mn), _pack_nibbles(q)], axis=1)


def _dequantize_q4_1(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q4_1: y = q * d + m."""
    d, m = f16_value(raw[:, 0:2])[:, None], f16_value(raw[:, 2:4])[:, None]
    return _unpack_nibbles(raw[:, 4:]).astype(np.float32) * d + m


# ---------------------------------------------------------------- Q5_0
# block_q5_0 (22 bytes):  | d: fp16 | qh: 32 fifth bits (uint32) | qs[0..15]: low nibbles |
#   q_j = low nibble | (bit j of qh) << 4;   w_j = d * (q_j - 16)
def _quantize_q5_0(blocks: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q5_0_ref: d = max / -16, q = min(31, trunc(x/d + 16.5))."""
    d = (_argmax_abs_signed(blocks) / np.float32(-16)).astype(np.float32)
    _check_scales(d, "Q5_0")
    q = np.minimum(31, _c_cast(blocks * _inverse(d)[:, None] + np.float32(16.5), np.int8)).astype(np.uint8)
    return np.concatenate([f16_bytes(d), _pack_qh(q), _pack_nibbles(q & 0x0F)], axis=1)


def _dequantize_q5_0(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q5_0: y = (q - 16) * d."""
    d = f16_value(raw[:, 0:2])[:, None]
    q = _unpack_nibbles(raw[:, 6:]) | _unpack_qh(raw[:, 2:6])
    return (q.astype(np.int32) - 16).astype(np.float32) * d


# ---------------------------------------------------------------- Q5_1
# block_q5_1 (24 bytes):  | d: fp16 | m: fp16 | qh (uint32) | qs[0..15] |   w_j = d * q_j + m
def _quantize_q5_1(blocks: np.ndarray) -> np.ndarray:
    """Mirrors quantize_row_q5_1_ref: d = (max - min) / 31, q = trunc((x - min)/d + 0.5)."""
    mn, mx = blocks.min(axis=1), blocks.max(axis=1)
    d = ((mx - mn) / np.float32(31)).astype(np.float32)
    _check_scales(np.concatenate([d, mn]), "Q5_1")
    q = _c_cast((blocks - mn[:, None]) * _inverse(d)[:, None] + np.float32(0.5), np.uint8)
    return np.concatenate([f16_bytes(d), f16_bytes(mn), _pack_qh(q), _pack_nibbles(q & 0x0F)], axis=1)


def _dequantize_q5_1(raw: np.ndarray) -> np.ndarray:
    """Mirrors dequantize_row_q5_1: y = q * d + m."""
    d, m = f16_value(raw[:, 0:2])[:, None], f16_value(raw[:, 2:4])[:, None]
    q = _unpack_nibbles(raw[:, 8:]) | _unpack_qh(raw[:, 4:8])
    return q.astype(np.float32) * d + m


# ---------------------------------------------------------------- plain floats
def _quantize_f16(blocks):
    return f16_bytes(blocks.reshape(-1))


def _dequantize_f16(raw):
    return f16_value(raw)[:, None]


def _quantize_bf16(blocks):
    """Mirrors ggml_compute_fp32_to_bf16: keep the top 16 bits, rounded to nearest even."""
    u = blocks.reshape(-1).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").view(np.uint8).reshape(-1, 2)


def _dequantize_bf16(raw):
    return (np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16).view(np.float32)


def _quantize_f32(blocks):
    return blocks.reshape(-1).astype("<f4").view(np.uint8).reshape(-1, 4)


def _dequantize_f32(raw):
    return np.ascontiguousarray(raw).view("<f4").astype(np.float32)


def _codecs() -> dict[str, tuple[Callable, Callable]]:
    return {
        "F32": (_quantize_f32, _dequantize_f32), "F16": (_quantize_f16, _dequantize_f16),
        "BF16": (_quantize_bf16, _dequantize_bf16),
        "Q8_0": (_quantize_q8_0, _dequantize_q8_0), "Q4_0": (_quantize_q4_0, _dequantize_q4_0),
        "Q4_1": (_quantize_q4_1, _dequantize_q4_1), "Q5_0": (_quantize_q5_0, _dequantize_q5_0),
        "Q5_1": (_quantize_q5_1, _dequantize_q5_1),
        "Q2_K": (kquants.quantize_q2_k, kquants.dequantize_q2_k),
        "Q3_K": (kquants.quantize_q3_k, kquants.dequantize_q3_k),
        "Q4_K": (kquants.quantize_q4_k, kquants.dequantize_q4_k),
        "Q5_K": (kquants.quantize_q5_k, kquants.dequantize_q5_k),
        "Q6_K": (kquants.quantize_q6_k, kquants.dequantize_q6_k),
    }


# ---------------------------------------------------------------- public API
def quantize(x, qtype: str) -> np.ndarray:
    """Quantize ``x`` (..., n) to ``qtype`` bytes, exactly as llama.cpp does without an imatrix.

    Rows are cut into blocks of ``block_size`` consecutive weights; ``n`` must be a
    multiple of it. Returns uint8 of shape (..., n // block_size * type_size), the layout
    of a GGUF tensor (and of ``gguf.quants.quantize``).
    """
    layout = block_layout(qtype)
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise CourseError(f"x must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise CourseError(f"x has dtype {x.dtype}; allowed: float16, float32, float64")
    if x.ndim == 0 or x.shape[-1] == 0 or x.shape[-1] % layout.block_size:
        raise CourseError(f"x has shape {x.shape}: the row length (last dimension) must be a positive "
                          f"multiple of the {layout.name} block size {layout.block_size}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise CourseError("x contains NaN or inf; llama.cpp's quantizers need finite weights")
    blocks = x.reshape(-1, layout.block_size)  # (n_blocks, block_size)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # IEEE inf/NaN as in C; see _c_cast
        raw = _codecs()[layout.name][0](blocks)  # (n_blocks, type_size)
    assert raw.dtype == np.uint8 and raw.shape == (blocks.shape[0], layout.type_size), raw.shape
    return raw.reshape(*x.shape[:-1], x.shape[-1] // layout.block_size * layout.type_size)


def dequantize(data: np.ndarray, qtype: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Turn ``qtype`` bytes back into float32 weights of ``shape`` (default: from ``data``'s rows).

    ``data`` is uint8 (any shape whose size is a whole number of blocks), e.g. a
    ``gguf.GGUFReader`` tensor's ``.data``; ``shape`` is the weight shape (rows, n).
    """
    layout = block_layout(qtype)
    if not isinstance(data, np.ndarray):
        raise CourseError(f"data must be a numpy array of bytes, got {type(data).__name__}")
    raw = np.ascontiguousarray(data).view(np.uint8)
    if raw.size == 0 or raw.size % layout.type_size:
        raise CourseError(f"data has {raw.size} bytes, not a positive multiple of the {layout.name} "
                          f"block size of {layout.type_size} bytes")
    n_blocks = raw.size // layout.type_size
    if shape is None:
        lead = raw.shape[:-1] if raw.ndim > 1 and raw.shape[-1] % layout.type_size == 0 else ()
        shape = (*lead, n_blocks * layout.block_size // max(1, int(np.prod(lead))))
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != n_blocks * layout.block_size:
        raise CourseError(f"shape={shape} holds {int(np.prod(shape))} weights but data holds "
                          f"{n_blocks} {layout.name} blocks = {n_blocks * layout.block_size} weights")
    if shape[-1] % layout.block_size:
        raise CourseError(f"shape={shape}: the row length must be a multiple of the {layout.name} "
                          f"block size {layout.block_size}")
    y = _codecs()[layout.name][1](raw.reshape(n_blocks, layout.type_size))  # (n_blocks, block_size)
    return np.ascontiguousarray(y, dtype=np.float32).reshape(shape)
