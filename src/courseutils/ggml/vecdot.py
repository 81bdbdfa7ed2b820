"""How llama.cpp's CPU backend multiplies a quantized weight row by an activation vector.

ggml does not turn quantized weights back into floats for a matrix product on the CPU. Each
weight type names a ``vec_dot_type`` (``type_traits_cpu`` in ``ggml/src/ggml-cpu/ggml-cpu.c``):
Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants. ``ggml_compute_forward_mul_mat``
first quantizes the float activations to that type (its ``from_float``, e.g. ``quantize_row_q8_0``),
then calls the type's ``vec_dot`` on each (weight row, activation row) pair: an integer dot
product per block, scaled by the two blocks' scales.

For Q4_0 x Q8_0 (``ggml_vec_dot_q4_0_q8_0_generic`` in ``ggml/src/ggml-cpu/quants.c``; the AVX2,
AVX-512 and NEON versions compute the same sums in another order):

    y = sum_b  fp32(d_w[b]) * fp32(d_x[b]) * sum_{j<32} (q_w[b, j] - 8) * q_x[b, j]      (int32 inner sum)

where w[b, j] = d_w[b] (q_w[b, j] - 8) is a Q4_0 block and x[b, j] = d_x[b] q_x[b, j] a Q8_0 block
(lesson 00, section 6; lesson 02 decodes both blocks).
"""
from __future__ import annotations

import numpy as np

from ..core.errors import CourseError
from .blocks import block_layout, split_fields

__all__ = ["vec_dot_q4_0_q8_0"]


def vec_dot_q4_0_q8_0(w_q4_0: np.ndarray, x_q8_0: np.ndarray) -> np.ndarray:
    """Dot products of Q4_0 weight rows with one Q8_0 activation row, as ggml's CPU kernel computes them.

    Mirrors ``ggml_vec_dot_q4_0_q8_0_generic``: an int32 sum of code products per block of 32,
    times the two fp16 scales, accumulated over blocks in float32.

    Args:
        w_q4_0: Q4_0 bytes, (rows, n_blocks * 18) or (n_blocks * 18,) (``blocks.quantize(W, "Q4_0")``).
        x_q8_0: Q8_0 bytes of one activation row, (n_blocks * 34,) (``blocks.quantize(x, "Q8_0")``).
    Returns:
        float32 (rows,) (or a 0-d array for one row).
    """
    lw, lx = block_layout("Q4_0"), block_layout("Q8_0")
    w = np.asarray(w_q4_0, dtype=np.uint8)
    x = np.asarray(x_q8_0, dtype=np.uint8).reshape(-1)
    if x.size % lx.type_size:
        raise CourseError(f"x_q8_0 has {x.size} bytes, not a multiple of the Q8_0 block ({lx.type_size} bytes)")
    n_blocks = x.size // lx.type_size
    rows = w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w.reshape(1, -1)
    if rows.shape[1] != n_blocks * lw.type_size:
        raise CourseError(f"w_q4_0 rows have {rows.shape[1]} bytes but x_q8_0 has {n_blocks} blocks; "
                          f"expected {n_blocks * lw.type_size} bytes per row")
    fw = split_fields(rows.reshape(-1), "Q4_0")
    fx = split_fields(x, "Q8_0")
    qs = fw["qs"].reshape(rows.shape[0], n_blocks, 16)
    q_w = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=-1).astype(np.int32) - 8   # (rows, n_blocks, 32): j and j+16
    q_x = fx["qs"].astype(np.int32).reshape(n_blocks, 32)                          # (n_blocks, 32)
    sumi = np.einsum("rbj,bj->rb", q_w, q_x)                                        # int32 per block
    d_w = fw["d"].astype(np.float32).reshape(rows.shape[0], n_blocks)
    d_x = fx["d"].astype(np.float32).reshape(n_blocks)
    terms = (sumi.astype(np.float32) * d_w) * d_x                                   # float32, C's order
    out = np.add.accumulate(terms, axis=1, dtype=np.float32)[:, -1]                # sumf += ... block by block
    return out.reshape(w.shape[:-1]) if w.ndim > 1 else out.reshape(())
