"""GPTQ: quantize a layer one input column at a time, moving each column's error onto the rest.

Lesson 06 derives it from OBS (lesson 05). For a linear layer with calibration inputs X
(n tokens x d_in) the layer loss of a weight change is ``||X (W - W_hat)^T||^2``, whose
Hessian with respect to a row of W is ``H = 2 X^T X / n`` (the same for every row). OBS
says: after fixing weight q of a row to its quantized value, the best change of the
row's *remaining* weights is

    delta = -(w_q - quant(w_q)) / [H^-1]_qq * (H^-1)_{q,:}                         (OBQ)

GPTQ (Frantar et al. 2023) makes this fast enough for LLMs:

1. every row uses the same column order, so H^-1 of the remaining columns is shared;
2. the successive H^-1 rows needed are the rows of the upper Cholesky factor U of H^-1
   (``H^-1 = U^T U``), so no rank-1 downdates are computed;
3. updates are applied lazily, a block of B columns at a time (memory bandwidth);
4. H is dampened, ``H + lambda * mean(diag H) * I``, so its Cholesky exists;
5. optionally, columns go in order of decreasing ``diag(H)`` (act-order); with groups,
   ``static_groups`` fixes each group's scale from the unquantized weights first, so a
   group's parameters do not depend on the order its columns are visited in.

:func:`gptq_quantize` is that algorithm on plain tensors (W, H); walking a model's layers
and collecting H belong to :mod:`courseutils.calib`. Variable names follow the paper:
``W``, ``H``, ``Hinv`` (= U), ``Q``, ``Err1``, ``Losses``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import CourseError
from .quantizer import QuantSpec, fit_params, group_slices, quantize_dequantize

__all__ = ["GPTQResult", "gptq_quantize", "layer_error"]


@dataclass
class GPTQResult:
    """What :func:`gptq_quantize` returns.

    Attributes:
        W_hat: quantized-dequantized weights (d_out, d_in), float32, in the original column order.
        losses: per-weight OBS loss estimate ``(w - q)^2 / [H^-1]_qq^2 / 2``, summed (a float).
        perm: the column order used (act-order), or ``None``.
        g_idx: the group of each (original) input column, (d_in,): the columns that share one
            (s, z). Without act-order or with static groups it is ``j // group_size``.
    """

    W_hat: "object"
    losses: float
    perm: "object | None"
    g_idx: "object"


def layer_error(W, W_hat, H) -> float:
    """The layer reconstruction error ``tr((W - W_hat) H (W - W_hat)^T)`` = ``2/n ||X (W - W_hat)^T||^2``.

    With ``H = 2 X^T X / n`` this is the squared output error per token, times 2.
    """
    import torch

    D = (W.double() - W_hat.double())
    return float(torch.einsum("ij,jk,ik->", D, H.double(), D))


def gptq_quantize(W, H, spec: QuantSpec, block_size: int = 128, damp: float = 0.01, act_order: bool = False,
                  static_groups: bool = False) -> GPTQResult:
    """Quantize ``W`` (d_out, d_in) column by column with the layer Hessian ``H`` (d_in, d_in).

    Args:
        W: layer weights; any float dtype and device (the work is float32 on W's device).
        H: ``2 X^T X / n`` from calibration inputs (e.g. :class:`courseutils.calib.hessian.HessianAccumulator`).
        spec: bits, group size, symmetry, clipping (:class:`QuantSpec`).
        block_size: B, the columns updated together lazily (rounded up to a multiple of the group size).
        damp: lambda, as a fraction of mean(diag H).
        act_order: visit columns in order of decreasing ``diag(H)``.
        static_groups: with groups, fit every group's (s, z) on the unquantized W before starting.
    """
    import torch

    if not torch.is_tensor(W) or W.ndim != 2:
        raise CourseError(f"W must be a 2-D torch tensor (d_out, d_in); got shape {tuple(getattr(W, 'shape', ()))}")
    d_out, d_in = W.shape
    if not torch.is_tensor(H) or tuple(H.shape) != (d_in, d_in):
        raise CourseError(f"H must be a (d_in, d_in) = ({d_in}, {d_in}) tensor; got shape {tuple(getattr(H, 'shape', ()))}")
    if not (isinstance(damp, float) and 0 < damp < 1):
        raise CourseError(f"damp={damp!r} must be a float between 0 and 1 (a fraction of mean(diag H))")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise CourseError(f"block_size={block_size!r} must be a positive integer")
    groups = group_slices(d_in, spec.group_size)  # checks that the group size divides d_in
    g = spec.group_size or d_in
    B = -(-block_size // g) * g if spec.group_size else block_size  # a block holds whole groups

    W = W.detach().to(torch.float32).clone()
    H = H.detach().to(W.device, torch.float32).clone()
    dead = torch.diag(H) == 0  # inputs that were always 0: their weights cannot matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    if static_groups and spec.group_size:
        params = [fit_params(W[:, cols], spec) for cols in groups]  # from the unquantized weights
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]

    H += damp * torch.mean(torch.diag(H)) * torch.eye(d_in, device=W.device)
    L = torch.linalg.cholesky(H)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)  # U with H^-1 = U^T U

    Q = torch.zeros_like(W)
    Losses = torch.zeros_like(W)
    g_idx = torch.arange(d_in, device=W.device) // g
    if perm is not None and not static_groups:
        g_idx[perm] = torch.arange(d_in, device=W.device) // g  # groups formed in visiting order
    s = z = None
    if not spec.group_size:
        s, z = fit_params(W, spec)  # per output channel: one (s, z) per row, from the whole row
    for i1 in range(0, d_in, B):
        i2 = min(i1 + B, d_in)
        W1 = W[:, i1:i2].clone()  # (d_out, B): the block, updated as its columns are quantized
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if static_groups and spec.group_size:
                original = int(perm[col]) if perm is not None else col
                s, z = params[original // g]
            elif spec.group_size and col % g == 0:  # a group's first column: fit on its (updated) weights
                s, z = fit_params(W1[:, i:i + g], spec)
            w, d = W1[:, i], Hinv1[i, i]
            q = quantize_dequantize(w.unsqueeze(1), s, z, spec).squeeze(1)  # (d_out,)
            Q1[:, i] = q
            Losses[:, col] = (w - q) ** 2 / d**2 / 2
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)  # OBQ update inside the block
            Err1[:, i] = err
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]  # the lazy update of every later column

    if perm is not None:
        Q = Q[:, torch.argsort(perm)]
    return GPTQResult(W_hat=Q, losses=float(Losses.sum()), perm=perm, g_idx=g_idx)
