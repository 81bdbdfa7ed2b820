"""AWQ: scale up the input channels that see large activations before rounding, then fold.

Lesson 07 derives it from lesson 04's channel sensitivity. For a linear layer ``y = W x``
any positive scale per input channel leaves the function unchanged,

    W x = (W diag(s)) (diag(s)^-1 x),                                              (eq. 1)

but not its quantization. The layer then computes ``Q(W diag(s)) diag(s)^-1 x``: column j
is rounded on a grid of step Delta (its group's scale, which grows only if column j holds
the group's largest value) and then divided by s_j, so its rounding error reaching y
shrinks by about 1/s_j, in proportion to how much x_j carries. Scaling every channel up
is no gain: the group's step grows with its largest scaled weight.

AWQ (Lin et al., 2024) takes the scales from the activations alone,

    s = mean_t |x_tj| ^ alpha,   alpha in {0, 1/20, ..., 19/20}                    (eq. 2)

normalised so that ``sqrt(max(s) min(s)) = 1``, and chooses alpha for each group of linear
layers that share one input (q/k/v after the attention norm, gate/up after the MLP norm,
o after v, down after up) by measuring the output error of the smallest module that holds
the group (attention, MLP, or the layer itself), with only that group quantized:

    L(alpha) = mean || M(X; Q(W diag(s)) diag(s)^-1) - M(X; W) ||^2                (eq. 3)

The chosen scales fold into the operation that produces the input (an RMSNorm's weight,
or the previous linear layer's rows: divided by s) and into the layers (columns multiplied
by s), which by eq. 1 leaves the full-precision model unchanged. A clipping search then
shrinks each row's group range by the ratio c that minimises that group's output error

    E_g(c) = (w_g - w_hat_g(c)) H_gg (w_g - w_hat_g(c))^T,   H = 2 X^T X / n           (eq. 4)

(the reference code skips it for q and k, whose errors are multiplied together in the
attention scores). :func:`courseutils.algorithms.apply.quantize_model` with
``method="awq"`` walks a whole model with these pieces.

E|x_j|, the statistic of eq. 2, is the first moment of lesson 04's proxy E||X_j||^2 (AWQ's
special case of alpha_j = E||G^T X_:,j||^2 when every output gradient is alike).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..calib.capture import run_block
from ..core.errors import CourseError
from .quantizer import CLIP_GRID, QuantSpec, fit_params, group_slices, quantize_dequantize, rtn_quantize

__all__ = ["ALPHA_GRID", "SKIP_CLIP", "ScaleGroup", "LLAMA_SCALE_GROUPS", "ScaleSearch", "scale_groups",
           "activation_mean", "awq_scales", "scaled_quantize", "capture_calls", "run_module", "search_scale",
           "fold_scales", "clip_search", "salient_channels", "keep_channels"]

ALPHA_GRID = tuple(i / 20 for i in range(20))  # 0, 0.05, ..., 0.95: the reference code's grid
SKIP_CLIP = ("q_proj", "k_proj")                # no clipping search for these (see eq. 4)


@dataclass(frozen=True)
class ScaleGroup:
    """Linear layers that read the same input, the module that produces it, and where to look.

    ``prev`` is an RMSNorm (its weight is divided by s) or a linear layer (its output rows
    are divided by s); ``linears`` get their input columns multiplied by s; eq. 3 measures
    the output of ``inspect``, the smallest module that holds them (as the reference code).
    """

    prev: str
    linears: tuple[str, ...]
    inspect: str


LLAMA_SCALE_GROUPS = (
    ScaleGroup("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "self_attn"),
    ScaleGroup("self_attn.v_proj", ("self_attn.o_proj",), "self_attn.o_proj"),
    ScaleGroup("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp"),
    ScaleGroup("mlp.up_proj", ("mlp.down_proj",), "mlp.down_proj"),
)


def scale_groups(block) -> list[ScaleGroup]:
    """The groups of :data:`LLAMA_SCALE_GROUPS` whose scales can be folded in this block.

    v -> o needs o_proj's inputs to be v_proj's outputs one to one. With grouped-query
    attention (fewer key/value heads than heads) each v output feeds several o inputs, so
    the reference code skips that group, and so does this.
    """
    groups = []
    for g in LLAMA_SCALE_GROUPS:
        prev = block.get_submodule(g.prev)
        first = block.get_submodule(g.linears[0])
        width = getattr(prev, "out_features", None) or prev.weight.shape[0]
        if width == first.in_features:
            groups.append(g)
    return groups


def activation_mean(X):
    """``mean_t |x_tj|`` per input channel (eq. 2's statistic): X (n, d_in) -> (d_in,) float32."""
    import torch

    if not torch.is_tensor(X) or X.ndim != 2 or X.shape[0] == 0:
        raise CourseError(f"X must be a non-empty 2-D tensor (n_tokens, d_in); got shape {tuple(getattr(X, 'shape', ()))}")
    return X.float().abs().mean(dim=0)


def awq_scales(x_mean, alpha: float):
    """Eq. 2: ``s = x_mean^alpha`` (x_mean floored at 1e-4), normalised to ``sqrt(max s * min s) = 1``.

    ``alpha = 0`` gives s = 1 everywhere: plain round-to-nearest.
    """
    import torch

    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise CourseError(f"alpha={alpha!r} must lie in [0, 1]")
    s = torch.as_tensor(x_mean, dtype=torch.float32).clamp(min=1e-4) ** alpha
    return s / torch.sqrt(s.max() * s.min())


def scaled_quantize(W, s, spec: QuantSpec, ratio=None):
    """``Q(W diag(s)) diag(s)^-1``: the weight the layer computes with after folding s, in W's basis (eq. 1)."""
    import torch

    if not torch.is_tensor(W) or W.ndim != 2 or tuple(s.shape) != (W.shape[1],):
        raise CourseError(f"need W (d_out, d_in) and s (d_in,); got W {tuple(getattr(W, 'shape', ()))}, "
                          f"s {tuple(getattr(s, 'shape', ()))}")
    s = s.to(W.device, torch.float32)
    return rtn_quantize(W.float() * s, spec, ratio=ratio) / s


@dataclass
class ScaleSearch:
    """The outcome of :func:`search_scale` for one group (tensors on the CPU).

    Attributes:
        group: the layers scaled together.
        alphas, losses: the grid and eq. 3's block output error at each point.
        alpha: the grid point with the smallest loss; ``scales`` = eq. 2 at it, (d_in,).
        x_mean: the input statistic, (d_in,).
    """

    group: ScaleGroup
    alphas: tuple
    losses: list
    alpha: float
    scales: "object"
    x_mean: "object"


def _output_error(outputs, reference) -> float:
    """Mean squared difference between two lists of module outputs (eq. 3)."""
    total = sum(float(((o.float() - r.float()) ** 2).sum()) for o, r in zip(outputs, reference))
    return total / sum(r.numel() for r in reference)


def capture_calls(block, inputs, names) -> dict:
    """``{name: [(args, kwargs), ...]}``: how the block calls each submodule, one entry per batch.

    One full-precision run of the block; the calls can then be replayed on the submodule
    alone (:func:`run_module`), which keeps eq. 3's search cheap.
    """
    calls = {n: [] for n in names}
    handles = [block.get_submodule(n).register_forward_pre_hook(
        lambda module, args, kwargs, n=n: calls[n].append((args, kwargs)), with_kwargs=True) for n in names]
    try:
        run_block(block, inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


def run_module(module, calls) -> list:
    """The module's outputs for each captured call (the first element when it returns a tuple)."""
    import torch

    outputs = []
    with torch.no_grad():
        for args, kwargs in calls:
            out = module(*args, **kwargs)
            outputs.append(out[0] if isinstance(out, tuple) else out)
    return outputs


def search_scale(block, group: ScaleGroup, calls, x_mean, spec: QuantSpec, grid=ALPHA_GRID,
                 reference=None) -> ScaleSearch:
    """Grid search of eq. 3 for one group: quantize only its layers at ``s(alpha)``, rerun ``group.inspect``.

    Args:
        block: a decoder block (its weights are restored before returning).
        calls: the captured calls of ``group.inspect`` (:func:`capture_calls`).
        x_mean: eq. 2's statistic of the group's input, (d_in,).
        reference: the module's full-precision outputs on ``calls`` (computed when None).
    """
    import torch

    grid = tuple(float(a) for a in grid)
    if not grid:
        raise CourseError("grid is empty: give at least one alpha")
    module = block.get_submodule(group.inspect)
    reference = run_module(module, calls) if reference is None else reference
    linears = [block.get_submodule(n) for n in group.linears]
    originals = [lin.weight.detach().clone() for lin in linears]
    losses = []
    try:
        for alpha in grid:
            s = awq_scales(x_mean, alpha)
            with torch.no_grad():
                for lin, W in zip(linears, originals):
                    lin.weight.copy_(scaled_quantize(W, s, spec).to(lin.weight.dtype))
            losses.append(_output_error(run_module(module, calls), reference))
    finally:
        with torch.no_grad():
            for lin, W in zip(linears, originals):
                lin.weight.copy_(W)
    best = min(range(len(grid)), key=losses.__getitem__)
    return ScaleSearch(group, grid, losses, grid[best], awq_scales(x_mean, grid[best]).cpu(),
                       torch.as_tensor(x_mean).float().cpu())


def fold_scales(block, group: ScaleGroup, s) -> None:
    """Fold ``s`` into ``block`` in place (eq. 1): ``prev`` divided by s, the group's columns times s."""
    import torch

    prev = block.get_submodule(group.prev)
    with torch.no_grad():
        s = s.to(prev.weight.device, torch.float32)
        if prev.weight.ndim == 2:  # a linear layer: its output j is the next layers' input j
            prev.weight.copy_((prev.weight.float() / s[:, None]).to(prev.weight.dtype))
            if getattr(prev, "bias", None) is not None:
                prev.bias.copy_((prev.bias.float() / s).to(prev.bias.dtype))
        else:  # an RMSNorm: y = weight * x / rms(x)
            prev.weight.copy_((prev.weight.float() / s).to(prev.weight.dtype))
        for name in group.linears:
            lin = block.get_submodule(name)
            lin.weight.copy_((lin.weight.float() * s[None, :]).to(lin.weight.dtype))


def clip_search(W, H, spec: QuantSpec, grid=CLIP_GRID):
    """Eq. 4: for every row and group, the range ratio ``c`` in ``grid`` with the least output error.

    Args:
        W: weights (d_out, d_in) (already scaled, if AWQ scaled them).
        H: ``2 X^T X / n`` of the layer's inputs (in the same basis), (d_in, d_in).
    Returns:
        ratios, (d_out, n_groups) float32, for :func:`~courseutils.algorithms.quantizer.rtn_quantize`.
    """
    import torch

    W = W.float()
    if tuple(H.shape) != (W.shape[1], W.shape[1]):
        raise CourseError(f"H has shape {tuple(H.shape)}; expected (d_in, d_in) = {(W.shape[1], W.shape[1])}")
    H = H.to(W.device, torch.float32)
    slices = group_slices(W.shape[1], spec.group_size)
    ratios = torch.ones(W.shape[0], len(slices), device=W.device)
    for g, cols in enumerate(slices):
        Wg, Hg = W[:, cols], H[cols, cols]
        best = torch.full((W.shape[0],), float("inf"), device=W.device)
        for c in grid:
            dW = Wg - quantize_dequantize(Wg, *fit_params(Wg, spec, ratio=float(c)), spec)
            err = ((dW @ Hg) * dW).sum(dim=1)  # (d_out,): eq. 4 for each row
            better = err < best
            best = torch.where(better, err, best)
            ratios[better, g] = float(c)
    return ratios


def salient_channels(score, fraction: float = 0.01):
    """Indices of the ``ceil(fraction * d_in)`` input channels with the largest ``score`` (d_in,)."""
    import math

    import torch

    if not 0.0 < fraction <= 1.0:
        raise CourseError(f"fraction={fraction!r} must lie in (0, 1]")
    score = torch.as_tensor(score).float()
    k = max(1, math.ceil(fraction * score.numel()))
    return torch.topk(score, k).indices


def keep_channels(W, W_hat, channels):
    """``W_hat`` with the input ``channels`` (columns) put back to their full-precision values."""
    out = W_hat.clone()
    out[:, channels] = W[:, channels].to(out.dtype)
    return out
