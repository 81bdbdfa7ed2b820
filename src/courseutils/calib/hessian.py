"""Curvature: the layer Hessian, the empirical Fisher and Hutchinson trace estimates (lesson 05).

**Layer Hessian.** The layer-local objective of OBS/GPTQ for one output row ``w`` (d_in,)
is the mean squared output error ``E(w_hat) = (1/N) ||X (w_hat - w)||^2`` over the N
calibration tokens (rows of X, shape (N, d_in)). Its Hessian is the same for every row:

    H = 2 X^T X / N          (d_in, d_in)

It needs no labels because the objective compares the layer's own outputs, ``X w_hat`` with
``X w``: a squared difference of outputs, whose second derivative is ``2 X^T X`` whatever the
targets are (the labels only enter the full loss, which this objective replaces).

GPTQ's paper writes ``H = 2 X X^T`` with X stored as (d_in, N) columns. Its code
(``GPTQ.add_batch``) counts *samples*, ``nsamples += inp.shape[0]``, which for a transformer
layer is the number of sequences in the batch, not of tokens; it keeps
``H <- H n/(n+m) + (2/(n+m)) X_b^T X_b`` with n, m in sequences, so after S sequences of T tokens
``H_GPTQ = 2 X^T X / S = T * (2 X^T X / N)``. ``HessianAccumulator(count="sequence")`` reproduces
it. The factor T scales H^-1 by 1/T and leaves GPTQ's update ``(w_q - q) / [H^-1]_qq * H^-1[q, :]``
and the relative dampening unchanged; only the reported losses scale with T.
Dampening adds ``lambda * mean(diag H)`` to the diagonal (GPTQ's ``percdamp``, 0.01).

**Empirical Fisher.** With per-sequence gradients ``g_s = d(sum_t l_t)/d theta`` of the
summed next-token NLL of sequence s (T' predicted tokens each, S sequences),

    F = (1 / (S T')) sum_s g_s g_s^T

estimates the Hessian of the *mean* per-token NLL: for labels drawn from the model
(``labels="model"``, the true Fisher) the cross-token terms vanish in expectation and
``E[g g^T] = E[grad^2 l]`` holds per token; with the data's labels (``labels="data"``)
it holds only near a well-fitting minimum. ``mode="diag"`` keeps ``diag F``;
``mode="block"`` the full matrix of a (small) parameter block.

**Hutchinson.** For Rademacher ``v`` (entries +-1), ``E[v^T H v] = tr H``. The product
``H v`` costs one double backward (``autograd.grad`` with ``create_graph=True``, then the
gradient of ``<g, v>``). Drawing ``v`` over all parameters at once and reading
``v_l^T (H v)_l`` per layer gives unbiased per-layer traces ``tr H_ll`` (HAWQ-V2). One probe's
variance for block l is (:func:`hutchinson_variance`)

    Var[v_l^T (H v)_l] = 2 sum_{i != k in l} H_ik^2 + sum_{i in l, k not in l} H_ik^2,

the off-diagonal curvature inside the block, plus that coupling it to the other blocks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np

from ..core.errors import CourseError
from .hooks import LinearHooks, iter_batches, linear_layers, model_device, next_token_nll

__all__ = ["HessianAccumulator", "layer_hessians", "dampen", "hessian_inverse", "empirical_fisher",
           "hessian_vector_product", "hutchinson_trace", "hutchinson_variance", "model_hutchinson",
           "double_backward_attention"]


class HessianAccumulator:
    """Running ``H = 2 X^T X / n`` over batches of layer inputs (GPTQ's ``add_batch``).

    ``count="token"`` (default): n counts tokens, so ``H = 2 X^T X / N``, the Hessian of the mean
    squared output error per token. ``count="sequence"``: n counts the leading dimension of each
    3-D batch (sequences), as GPTQ's code does, so ``H = T * 2 X^T X / N`` for sequences of T tokens.
    ``dtype``: float64 (default) for lesson 05's exact H; float32, as GPTQ's code keeps it, when
    speed matters more (whole-model GPTQ, :mod:`courseutils.algorithms.apply`).
    """

    def __init__(self, d_in: int, device=None, count: str = "token", dtype=None):
        import torch

        if count not in ("token", "sequence"):
            raise CourseError(f"count={count!r}; allowed: 'token' (2 X^T X / N), 'sequence' (GPTQ's 2 X^T X / S)")
        self.H = torch.zeros(d_in, d_in, dtype=dtype or torch.float64, device=device)  # (d_in, d_in)
        self.n = 0
        self.count = count

    def add_batch(self, X) -> None:
        """Fold in ``X`` of shape (m, d_in) or (B, T, d_in): ``H <- H n/(n+m) + 2 X^T X/(n+m)``.

        m is the number of tokens (``count="token"``) or of sequences B (``count="sequence"``,
        which needs a 3-D batch).
        """
        import torch

        X = torch.as_tensor(X)
        if self.count == "sequence" and X.ndim != 3:
            raise CourseError(f"X has shape {tuple(X.shape)}; count='sequence' needs (B, T, d_in) batches")
        m = X.shape[0] if self.count == "sequence" else None
        X = X.reshape(-1, X.shape[-1]).to(self.H.device, self.H.dtype)  # (tokens, d_in)
        if X.shape[1] != self.H.shape[0]:
            raise CourseError(f"X has {X.shape[1]} input channels; this accumulator expects d_in={self.H.shape[0]}")
        m = X.shape[0] if m is None else m
        if m == 0 or X.shape[0] == 0:
            return
        self.H *= self.n / (self.n + m)
        self.H += (2.0 / (self.n + m)) * (X.T @ X)
        self.n += m


def layer_hessians(model, tokens, layers: Sequence[str] | None = None, batch_size: int = 8,
                   progress: bool = True) -> dict[str, "object"]:
    """``H = 2 X^T X / N`` of each linear layer's inputs over calibration ``tokens``.

    Forward passes only. Returns ``{name: float64 tensor (d_in, d_in)}`` on the model's device.
    """
    import torch

    names = list(layers) if layers is not None else [n for n, _ in linear_layers(model)]
    acc: dict[str, HessianAccumulator] = {}

    def on_forward(name, X):  # X: (N, d_in)
        if name not in acc:
            acc[name] = HessianAccumulator(X.shape[1], X.device)
        acc[name].add_batch(X)

    device = model_device(model)
    with torch.no_grad(), LinearHooks(model, names, on_forward=on_forward):
        for batch in iter_batches(tokens, batch_size, "layer Hessians 2XᵀX/N", progress):
            model(input_ids=batch.to(device))
    return {n: acc[n].H for n in names}


def _square(H, param: str = "H"):
    import torch

    H = torch.as_tensor(H)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise CourseError(f"{param} has shape {tuple(H.shape)}; expected a non-empty square (d, d) matrix")
    if not torch.isfinite(H).all():
        raise CourseError(f"{param} contains NaN or inf")
    return H.to(torch.float64)


def dampen(H, damp: float = 0.01):
    """``H + damp * mean(diag H) * I`` (float64). ``damp`` >= 0; GPTQ's default is 0.01."""
    import torch

    H = _square(H)
    if not isinstance(damp, (int, float)) or damp < 0:
        raise CourseError(f"damp={damp!r}; allowed: a number >= 0 (fraction of mean(diag H) added to the diagonal)")
    return H + damp * torch.diagonal(H).mean() * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)


def hessian_inverse(H, damp: float = 0.01):
    """``(H + damp * mean(diag H) I)^-1`` through a Cholesky factorization (float64).

    Raises :class:`CourseError` when the (dampened) matrix is not positive definite: a
    singular layer Hessian (fewer tokens than input channels, or a dead input channel)
    needs ``damp > 0``.
    """
    import torch

    Hd = dampen(H, damp)
    L, info = torch.linalg.cholesky_ex(Hd)
    if int(info) != 0:
        hint = "pass damp > 0 (e.g. 0.01)" if damp == 0 else "increase damp or check H for all-zero inputs"
        raise CourseError(f"H ({Hd.shape[0]}x{Hd.shape[0]}) is singular or not positive definite with "
                          f"damp={damp!r} (Cholesky failed at column {int(info) - 1}); {hint}")
    return torch.cholesky_inverse(L)


@contextmanager
def _requiring_grad(params: Sequence):
    """Let ``params`` require grad for the duration (restored afterwards)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def _params(model, names: Sequence[str]):
    named = dict(model.named_parameters())
    missing = [n for n in names if n not in named]
    if missing:
        raise CourseError(f"params={missing!r} are not parameters of the model; e.g. {list(named)[:3]}")
    return [named[n] for n in names]


def _weight_names(model, layers: Sequence[str] | None) -> list[str]:
    names = list(layers) if layers is not None else [n for n, _ in linear_layers(model)]
    return [n if n.endswith(".weight") else n + ".weight" for n in names]


def empirical_fisher(model, tokens, params: Sequence[str] | None = None, mode: str = "diag",
                     labels: str = "data", seed: int = 0, max_block: int = 4096,
                     progress: bool = True) -> dict[str, "object"]:
    """Fisher estimate ``F = sum_s g_s g_s^T / (S T')`` from per-sequence gradients.

    Args:
        params: parameter names (or linear-layer names; ``.weight`` is appended).
            Default: every linear layer's weight.
        mode: ``"diag"`` -> ``{name: diag F}`` shaped like the parameter;
            ``"block"`` -> ``{name: F}`` of shape (P, P) for each parameter (P <= ``max_block``).
        labels: ``"data"`` (empirical Fisher: the text's own next tokens) or
            ``"model"`` (true Fisher: next tokens sampled from the model, seeded).

    One backward pass per sequence (S of them).
    """
    import torch

    if mode not in ("diag", "block"):
        raise CourseError(f"mode={mode!r}; allowed: 'diag', 'block'")
    if labels not in ("data", "model"):
        raise CourseError(f"labels={labels!r}; allowed: 'data' (empirical Fisher), 'model' (true Fisher)")
    names = _weight_names(model, params)
    ps = _params(model, names)
    if mode == "block":
        big = [(n, p.numel()) for n, p in zip(names, ps) if p.numel() > max_block]
        if big:
            raise CourseError(f"mode='block' needs P <= max_block={max_block} parameters per block; "
                              f"{big[0][0]} has {big[0][1]}: use mode='diag' or a smaller layer")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device = model_device(model)
    acc = [torch.zeros(p.numel(), p.numel(), dtype=torch.float64, device=device) if mode == "block"
           else torch.zeros_like(p, dtype=torch.float64) for p in ps]
    count = 0
    for seq in iter_batches(tokens, 1, f"empirical Fisher ({labels} labels)", progress):
        seq = seq.to(device)
        with _requiring_grad(ps):
            logits = model(input_ids=seq).logits[:, :-1].float()             # (1, T-1, V)
            if labels == "data":
                target = seq[:, 1:]
            else:
                probs = torch.softmax(logits.detach(), -1).reshape(-1, logits.shape[-1]).cpu()
                target = torch.multinomial(probs, 1, generator=gen).reshape(1, -1).to(device)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="sum")
            grads = torch.autograd.grad(loss, ps)
        for a, g in zip(acc, grads):
            g = g.detach().double()
            if mode == "block":
                a += torch.outer(g.reshape(-1), g.reshape(-1))
            else:
                a += g * g
        count += target.numel()
    return {n: a / count for n, a in zip(names, acc)}


@contextmanager
def double_backward_attention():
    """Route ``scaled_dot_product_attention`` to its math kernel, which supports double backward.

    (The fused CPU/CUDA kernels have no second derivative; HF Llama uses SDPA.)
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        yield


def hessian_vector_product(loss_fn: Callable[[], "object"], params: Sequence, v: Sequence) -> list:
    """``H v`` for the Hessian of ``loss_fn()`` w.r.t. ``params``, by double backward.

    ``g = dL/dtheta`` with ``create_graph=True``, then ``Hv = d<g, v>/dtheta``.
    """
    import torch

    loss = loss_fn()
    g = torch.autograd.grad(loss, params, create_graph=True)
    gv = sum((gi * vi).sum() for gi, vi in zip(g, v))
    return list(torch.autograd.grad(gv, params))


def hutchinson_trace(loss_fn: Callable[[], "object"], params: Sequence, n_probes: int = 16, seed: int = 0,
                     progress: bool = True) -> np.ndarray:
    """Per-probe Hutchinson estimates ``v_p^T (H v)_p`` of ``tr H_pp`` for each parameter block p.

    Returns an array of shape ``(n_probes, len(params))``; its column means are the
    estimates, and ``cumsum / arange`` shows how they converge.
    """
    import torch
    from tqdm.auto import tqdm

    if not isinstance(n_probes, int) or n_probes < 1:
        raise CourseError(f"n_probes={n_probes!r}; allowed: a positive integer")
    params = list(params)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = np.zeros((n_probes, len(params)))
    for k in tqdm(range(n_probes), desc="Hutchinson probes", disable=not progress, leave=False):
        v = [(torch.randint(0, 2, p.shape, generator=gen) * 2 - 1).to(p.device, p.dtype) for p in params]
        Hv = hessian_vector_product(loss_fn, params, v)
        out[k] = [float((vi * hvi).sum()) for vi, hvi in zip(v, Hv)]
    return out


def hutchinson_variance(H, blocks: Sequence[slice] | None = None) -> np.ndarray:
    """Exact variance of one Rademacher probe's estimate ``v_l^T (H v)_l`` of ``tr H_ll``, per block.

    ``Var = 2 sum_{i != k, both in l} H_ik^2 + sum_{i in l, k not in l} H_ik^2`` for a symmetric H
    (``v_l^T (H v)_l - tr H_ll = sum_{i in l, k != i} v_i v_k H_ik``, and distinct products
    ``v_i v_k`` are uncorrelated with variance 1). ``blocks=None`` treats H as one block:
    ``2 sum_{i != k} H_ik^2``. Returns ``(n_blocks,)``.
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1] or not np.allclose(H, H.T):
        raise CourseError(f"H has shape {H.shape}; expected a symmetric square matrix")
    n = H.shape[0]
    blocks = [slice(0, n)] if blocks is None else list(blocks)
    H2 = H ** 2
    out = []
    for b in blocks:
        inside = np.zeros(n, dtype=bool)
        inside[b] = True
        if not inside.any():
            raise CourseError(f"block {b!r} selects no index of the {n}x{n} matrix")
        within = H2[np.ix_(inside, inside)]
        out.append(2 * (within.sum() - np.trace(within)) + H2[np.ix_(inside, ~inside)].sum())
    return np.array(out)


def model_hutchinson(model, tokens, layers: Sequence[str] | None = None, n_probes: int = 16, seed: int = 0,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """Hutchinson estimates of ``tr H_ll`` per linear layer for the mean next-token NLL on ``tokens``.

    All of ``tokens`` forms one batch (keep it small on a CPU). Returns
    ``{layer name: (n_probes,) per-probe estimates}``.
    """
    names = _weight_names(model, layers)
    ps = _params(model, names)
    device = model_device(model)
    batch = next(iter_batches(tokens, len(tokens), None, False)).to(device)
    with _requiring_grad(ps), double_backward_attention():
        est = hutchinson_trace(lambda: next_token_nll(model, batch).mean(), ps, n_probes, seed, progress)
    return {n[: -len(".weight")]: est[:, i] for i, n in enumerate(names)}
