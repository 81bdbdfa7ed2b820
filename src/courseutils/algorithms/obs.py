"""Optimal Brain Damage and Optimal Brain Surgeon: saliencies, the OBS update, pruning (lesson 05).

Near a minimum the loss change of a weight perturbation ``dw`` is, to second order,
``dL ~ 1/2 dw^T H dw``. Removing weight q means the constraint ``e_q^T dw + w_q = 0``.

- **OBD** (LeCun et al. 1990) keeps only diag H and moves nothing else:
  ``dw = -w_q e_q``, so the saliency is ``L_q = w_q^2 H_qq / 2``.
- **OBS** (Hassibi & Stork 1993) minimises ``1/2 dw^T H dw`` under the constraint; the
  Lagrangian ``1/2 dw^T H dw + lam (e_q^T dw + w_q)`` gives

      dw = -(w_q / [H^-1]_qq) H^-1 e_q,        L_q = w_q^2 / (2 [H^-1]_qq),

  and after removing q the inverse Hessian of the remaining weights is
  ``H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq`` (no new inversion).
- **OBS never costs more than OBD**: ``[H^-1]_qq >= 1 / H_qq`` for a symmetric positive definite H
  (Cauchy-Schwarz: ``1 = (e_q^T H^{1/2} H^{-1/2} e_q)^2 <= H_qq [H^-1]_qq``), so
  ``w_q^2 / (2 [H^-1]_qq) <= w_q^2 H_qq / 2``.
- **A set Q at once** (:func:`obs_update_set`): the constraint ``E_Q^T dw = t_Q - w_Q`` (``E_Q``: the
  columns of the identity for Q, ``t_Q`` the targets) gives

      dw = H^-1 E_Q ([H^-1]_QQ)^-1 (t_Q - w_Q),    L_Q = 1/2 (w_Q - t_Q)^T ([H^-1]_QQ)^-1 (w_Q - t_Q).

  Pruning is ``t_Q = 0``. **OBQ** (Frantar & Alistarh 2022, the step to GPTQ) sets one weight to its
  quantized value, ``t_q = quant(w_q)`` (:func:`obq_update`): the OBS update with ``w_q - quant(w_q)``
  in place of ``w_q``.

For a linear layer with the layer-local objective ``sum_rows (1/N) ||X (w_hat_r - w_r)||^2``
every output row r has the same Hessian ``H = 2 X^T X / N`` (see :mod:`courseutils.calib.hessian`)
and rows are independent, so OBS runs row by row; here all rows of a block run together,
each with its own copy of ``H^-1`` (rows prune different weights).

All functions take numpy arrays or torch tensors and return float64 torch tensors on
the input's device. ``W`` is (d_out, d_in); ``H`` and ``H_inv`` are (d_in, d_in).
"""
from __future__ import annotations

from ..calib.hessian import _square, hessian_inverse
from ..core.errors import CourseError

__all__ = ["obd_saliency", "obs_saliency", "obs_update", "obs_update_set", "obq_update", "remove_from_inverse",
           "prune_magnitude", "prune_obd", "prune_obs", "prune", "reconstruction_error", "METHODS"]

METHODS = ("magnitude", "obd", "obs")


def _t(x, param: str):
    import torch

    x = torch.as_tensor(x)
    if x.numel() == 0:
        raise CourseError(f"{param} is empty (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise CourseError(f"{param} contains NaN or inf")
    return x.to(torch.float64)


def _check_pair(W, H, hname: str = "H"):
    """W as (rows, d_in) float64 (a 1-D w becomes one row) and a matching square H."""
    W, H = _t(W, "W"), _t(H, hname)
    W2 = W.reshape(1, -1) if W.ndim == 1 else W
    if W2.ndim != 2:
        raise CourseError(f"W has shape {tuple(W.shape)}; expected (d_out, d_in) or (d_in,)")
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] != W2.shape[1]:
        raise CourseError(f"{hname} has shape {tuple(H.shape)}; W has d_in={W2.shape[1]} input channels, "
                          f"so {hname} must be ({W2.shape[1]}, {W2.shape[1]})")
    return W2.to(H.device), H


def obd_saliency(W, H):
    """OBD saliency ``L_q = w_q^2 H_qq / 2`` for every weight (W's shape)."""
    W2, H = _check_pair(W, H)
    return (W2 ** 2 * H.diagonal() / 2).reshape(_t(W, "W").shape)


def obs_saliency(W, H_inv):
    """OBS saliency ``L_q = w_q^2 / (2 [H^-1]_qq)`` for every weight (W's shape)."""
    W2, H_inv = _check_pair(W, H_inv, "H_inv")
    d = H_inv.diagonal()
    if (d <= 0).any():
        raise CourseError("H_inv has a non-positive diagonal entry; it is not the inverse of a positive definite H")
    return (W2 ** 2 / (2 * d)).reshape(_t(W, "W").shape)


def obs_update(w, H_inv, q: int):
    """The OBS step that zeroes ``w_q`` at least quadratic cost: ``(dw, L_q)``.

    ``dw = -(w_q / [H^-1]_qq) H^-1 e_q`` (so ``(w + dw)_q = 0``) and ``L_q = w_q^2 / (2 [H^-1]_qq)``.

    Args:
        w: (d,) weights; H_inv: (d, d); q: index of the weight to remove.
    """
    w, H_inv = _check_pair(w, H_inv, "H_inv")
    w = w[0]
    if not isinstance(q, int) or not 0 <= q < w.numel():
        raise CourseError(f"q={q!r}; allowed: an integer index 0..{w.numel() - 1}")
    hqq = H_inv[q, q]
    if hqq <= 0:
        raise CourseError(f"[H_inv]_qq = {float(hqq)} for q={q}; it must be positive")
    dw = -(w[q] / hqq) * H_inv[:, q]
    return dw, float(w[q] ** 2 / (2 * hqq))


def obs_update_set(w, H_inv, Q, target=None):
    """OBS for a set of weights at once: ``(dw, L_Q)`` moving ``w_Q`` to ``target`` at least quadratic cost.

    Minimises ``1/2 dw^T H dw`` subject to ``(w + dw)_Q = target`` (default 0, pruning). With
    ``E_Q`` the columns of the identity for Q, the Lagrangian gives

        dw = H^-1 E_Q ([H^-1]_QQ)^-1 (target - w_Q),
        L_Q = 1/2 (w_Q - target)^T ([H^-1]_QQ)^-1 (w_Q - target),

    the exact minimiser, which is not the sum of single-weight OBS steps: the weights of Q
    interact through the off-diagonal of ``[H^-1]_QQ``. One weight gives :func:`obs_update`.

    Args:
        w: (d,) weights; H_inv: (d, d) inverse Hessian; Q: indices (distinct) of the constrained weights;
        target: (|Q|,) values ``w_Q`` must take (default zeros).
    """
    import torch

    w, H_inv = _check_pair(w, H_inv, "H_inv")
    w = w[0]
    Q = [Q] if isinstance(Q, int) else list(Q)
    if not Q or len(set(Q)) != len(Q) or not all(isinstance(q, int) and 0 <= q < w.numel() for q in Q):
        raise CourseError(f"Q={Q!r}; allowed: distinct integer indices 0..{w.numel() - 1}, at least one")
    idx = torch.tensor(Q, device=w.device)
    t = torch.zeros(len(Q), dtype=w.dtype, device=w.device) if target is None else _t(target, "target").to(w.device)
    if t.shape != (len(Q),):
        raise CourseError(f"target has shape {tuple(t.shape)}; Q has {len(Q)} indices, so it must be ({len(Q)},)")
    r = w[idx] - t                                                    # (|Q|,) how far each must move
    HQQ = H_inv[idx][:, idx]                                          # [H^-1]_QQ  (|Q|, |Q|)
    L, info = torch.linalg.cholesky_ex(HQQ)
    if int(info) != 0:
        raise CourseError(f"[H_inv]_QQ for Q={Q} is not positive definite; H_inv is not the inverse of an SPD H")
    lam = torch.cholesky_solve(r[:, None], L)[:, 0]                   # ([H^-1]_QQ)^-1 (w_Q - t)
    dw = -H_inv[:, idx] @ lam                                         # (d,)
    return dw, float(0.5 * (r * lam).sum())


def obq_update(w, H_inv, q: int, value):
    """The OBQ step: set ``w_q`` to its quantized ``value`` and compensate with the other weights.

    ``dw = -((w_q - value) / [H^-1]_qq) H^-1 e_q``, cost ``(w_q - value)^2 / (2 [H^-1]_qq)``: the OBS
    update with the rounding error ``w_q - quant(w_q)`` in place of ``w_q`` (Frantar & Alistarh 2022).
    """
    return obs_update_set(w, H_inv, [q], [float(value)])


def remove_from_inverse(H_inv, q: int):
    """Inverse Hessian after removing weight q: ``H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq``.

    Row and column q become zero; the rest equals the inverse of H without row/column q.
    """
    H_inv = _square(H_inv, "H_inv")
    if not isinstance(q, int) or not 0 <= q < H_inv.shape[0]:
        raise CourseError(f"q={q!r}; allowed: an integer index 0..{H_inv.shape[0] - 1}")
    col = H_inv[:, q]
    return H_inv - col[:, None] * col[None, :] / H_inv[q, q]


def _check_sparsity(sparsity: float, d_in: int) -> int:
    if not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise CourseError(f"sparsity={sparsity!r}; allowed: a fraction in [0, 1) of each row's weights to remove")
    return int(round(sparsity * d_in))


def _zero_lowest(W, score, k: int):
    """Zero the k lowest-scoring weights of every row (no other change)."""
    import torch

    W = W.clone()
    if k:
        idx = torch.topk(score, k, dim=1, largest=False).indices  # (rows, k)
        W.scatter_(1, idx, 0.0)
    return W


def prune_magnitude(W, sparsity: float = 0.5):
    """Zero the ``sparsity`` fraction of smallest ``|w|`` in every row."""
    W = _t(W, "W")
    if W.ndim != 2:
        raise CourseError(f"W has shape {tuple(W.shape)}; expected (d_out, d_in)")
    return _zero_lowest(W, W.abs(), _check_sparsity(sparsity, W.shape[1]))


def prune_obd(W, H, sparsity: float = 0.5):
    """Zero the weights of lowest OBD saliency ``w^2 H_qq / 2`` in every row, without any update."""
    W2, H = _check_pair(W, H)
    return _zero_lowest(W2, obd_saliency(W2, H), _check_sparsity(sparsity, W2.shape[1]))


def prune_obs(W, H, sparsity: float = 0.5, damp: float = 0.01, block_bytes: int = 1 << 26, progress: bool = False):
    """Row-wise OBS: remove ``sparsity * d_in`` weights per row, one at a time, updating the rest.

    For each row: pick ``q = argmin w_q^2 / (2 [H^-1]_qq)`` among the remaining weights,
    apply ``dw = -(w_q/[H^-1]_qq) H^-1 e_q``, downdate ``H^-1`` (:func:`remove_from_inverse`),
    repeat. ``H^-1`` is the inverse of the dampened ``H`` (``damp * mean diag``).
    Rows are processed in blocks holding at most ``block_bytes`` of ``H^-1`` copies.

    Returns:
        the pruned and updated W, float64 (d_out, d_in).
    """
    import torch
    from tqdm.auto import tqdm

    W2, H = _check_pair(W, H)
    d_out, d_in = W2.shape
    k = _check_sparsity(sparsity, d_in)
    H_inv = hessian_inverse(H, damp)                                           # (d_in, d_in)
    rows = max(1, min(d_out, block_bytes // (8 * d_in * d_in)))
    out = W2.clone()
    for r0 in tqdm(range(0, d_out, rows), desc="OBS pruning", disable=not progress, leave=False):
        w = out[r0:r0 + rows]                                                  # (R, d_in) view
        R = w.shape[0]
        Hi = H_inv.expand(R, d_in, d_in).clone()                               # (R, d_in, d_in)
        pruned = torch.zeros(R, d_in, dtype=torch.bool, device=w.device)
        ar = torch.arange(R, device=w.device)
        for _ in range(k):
            diag = Hi.diagonal(dim1=1, dim2=2)                                  # (R, d_in)
            sal = torch.where(pruned, torch.inf, w ** 2 / (2 * diag))
            q = sal.argmin(1)                                                   # (R,)
            col = Hi[ar, q]                                                     # (R, d_in) = H^-1 e_q (symmetric)
            hqq = col[ar, q]                                                    # (R,)
            w -= (w[ar, q] / hqq)[:, None] * col
            # H^-1 <- H^-1 - H^-1 e_q e_q^T H^-1 / [H^-1]_qq, as one in-place batched rank-1 GEMM
            Hi.baddbmm_(col[:, :, None], (col / hqq[:, None])[:, None, :], alpha=-1)
            pruned[ar, q] = True
            w[pruned] = 0.0        # exact zeros: later steps move pruned weights only by round-off
    return out


def prune(W, H, method: str, sparsity: float = 0.5, damp: float = 0.01):
    """Dispatch to :func:`prune_magnitude`, :func:`prune_obd` or :func:`prune_obs`."""
    if method == "magnitude":
        return prune_magnitude(W, sparsity)
    if method == "obd":
        return prune_obd(W, H, sparsity)
    if method == "obs":
        return prune_obs(W, H, sparsity, damp)
    raise CourseError(f"method={method!r}; allowed: {METHODS}")


def reconstruction_error(W, W_hat, H) -> float:
    """Layer error ``sum_r 1/2 (w_hat_r - w_r)^T H (w_hat_r - w_r)`` = ``||X W_hat^T - X W^T||_F^2 / N``.

    ``H = 2 X^T X / N`` makes the two forms equal (the second needs X; the first only H).
    """
    W2, H = _check_pair(W, H)
    W_hat = _t(W_hat, "W_hat")
    if W_hat.numel() != W2.numel() or (W_hat.ndim == 2 and W_hat.shape != W2.shape):
        raise CourseError(f"W_hat has shape {tuple(W_hat.shape)}; W has shape {tuple(W2.shape)}")
    D = W_hat.reshape(W2.shape).to(H.device) - W2                               # (rows, d_in)
    return float(0.5 * ((D @ H) * D).sum())
