"""Channel sensitivity from a Taylor expansion of the loss (lesson 04).

**One convention for G.** For a calibration batch let ``L_sum`` be the *summed* next-token NLL
of all its ``n`` predicted tokens and ``L = L_sum / n`` the mean. ``G = dL_sum/dY`` (N, d_out),
one row per token position (N = tokens, including each sequence's last position, whose row is
zero); sequences do not interact, so ``G_i`` is also the gradient of its own sequence's summed
loss and does not depend on the batch size. Everything below uses this ``G``.

For a linear layer ``Y = X W^T`` (X: (N, d_in), W: (d_out, d_in)) a weight perturbation ``dW``
changes the mean loss by, to first order,

    dL ~ <dL/dW, dW> = (1/n) <G^T X, dW>,        dY = X dW^T.

The vector ``G^T X_{:,j}`` (d_out,) prices an error in input column ``j``. The *activation
sensitivity* (Xu 2026, eq. 5-6) is its squared norm, taken per token position:

    alpha_j = (1/N) sum_i X_ij^2 ||G_i||^2 = (X^T D X)_jj / N,     D = diag(||G_1||^2, ..., ||G_N||^2).

Eq. 5 squares ``G^T X_{:,j}`` over a whole sequence (``alpha_seq``, computed on request); it
equals ``T`` times eq. 6 only if the cross-position terms
``sum_{i != i'} X_ij X_i'j <G_i, G_i'>`` vanish: the diagonal approximation of the token Gram
matrix ``G G^T`` (per-position contributions treated as uncorrelated).

**From alpha to a loss change: the 1/d_out.** With the empirical Fisher as the curvature and
the position-diagonal approximation, ``dL ~ (1/(2n)) sum_i <G_i, dY_i>^2``. For a column error
``delta_j`` that points in no particular direction (``E[delta_j delta_j^T] = ||delta_j||^2 I / d_out``,
columns independent), ``E <G_i, delta_j>^2 = ||G_i||^2 ||delta_j||^2 / d_out``, so

    E dL ~ (N / 2n) sum_j (alpha_j / d_out) ||dW_{:,j}||^2.

``alpha_j`` sums ``d_out`` squared gradient components; a random error only meets one
direction's worth of them. Within a layer the factor is a constant; across layers of different
``d_out`` it decides the ranking (:func:`group_scores` applies it).

The two simplifications of the paper:

    AWQ  (uniform downstream gradient, D ~ I):  awq_j  = E_i X_ij^2          (eq. 8)
    GPTQ (every sample weighs the same):        gptq_j = (X^T X)_jj = N awq_j (eq. 9)

On one calibration set these two rank channels identically (they differ by the factor N);
AWQ's code actually averages the first moment ``E_i |X_ij|`` (``awq_abs``), kept as a
fourth proxy. The ground truth is measured: perturb one group of input channels (RTN or
noise), run the model, record the change of the mean NLL and the KL divergence, per held-out
sequence so that its standard error is known.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..calib.hooks import (LinearHooks, SuffixEvaluator, calibration_tokens, get_linear, iter_batches, linear_layers,
                    model_device, next_token_nll, swap_weight)
from ..core.errors import CourseError, ModelError

__all__ = ["LayerSensitivity", "PROXIES", "collect_sensitivity", "SequenceSensitivity", "sequence_sensitivity", "subset_agreement", "rtn_perturbation", "noise_perturbation",
           "measure_perturbation", "group_truth", "group_scores", "rank_correlation", "proxy_study",
           "layer_noise_sensitivity", "standard_error", "benchmark_proxies"]

PROXIES = ("alpha", "awq", "gptq", "awq_abs")


@dataclass
class LayerSensitivity:
    """Per-input-channel statistics of one linear layer, accumulated over calibration tokens.

    Arrays are float64 numpy on the CPU; ``d_in`` entries unless noted.
    """
    name: str
    n_tokens: int                 # N: rows of X seen
    alpha: np.ndarray             # (X^T D X)_jj / N   eq. 6, D_ii = ||G_i||^2
    awq: np.ndarray               # E_i X_ij^2         eq. 8
    gptq: np.ndarray              # (X^T X)_jj         eq. 9
    awq_abs: np.ndarray           # E_i |X_ij|         AWQ's activation statistic
    grad: np.ndarray              # (d_out, d_in) d(mean NLL)/dW = G^T X / n, the first-order coefficient
    alpha_seq: np.ndarray | None = field(default=None)  # E_s ||G_s^T X_{s,j}||^2 (cross terms kept)
    n_pred: int = 0               # n: predicted tokens (the mean loss divides L_sum by n)
    seq_len: int = 0              # T: tokens per calibration sequence

    @property
    def d_out(self) -> int:
        """Output channels of the layer (rows of W)."""
        return int(self.grad.shape[0])

    def proxy(self, kind: str) -> np.ndarray:
        """One of ``PROXIES`` (plus ``alpha_seq`` when collected) as a ``(d_in,)`` array."""
        allowed = PROXIES + (("alpha_seq",) if self.alpha_seq is not None else ())
        if kind not in allowed:
            raise CourseError(f"proxy={kind!r}; allowed: {allowed}")
        return getattr(self, kind)


class _Accumulator:
    """Running sums for every hooked layer; nothing per token is kept."""

    def __init__(self, per_sequence: bool):
        self.per_sequence = per_sequence
        self.sums: dict[str, dict] = {}
        self.batch_shape = (1, 1)  # (B, T) of the batch in flight, for per-sequence sums

    def _slot(self, name, d_in, d_out, device):
        import torch

        if name not in self.sums:
            z = lambda *s: torch.zeros(*s, dtype=torch.float64, device=device)  # noqa: E731
            self.sums[name] = {"n": 0, "x2g2": z(d_in), "x2": z(d_in), "xabs": z(d_in),
                               "gx": z(d_out, d_in), "seq": z(d_in)}
        return self.sums[name]

    def __call__(self, name, X, G):  # X: (N, d_in)  G: (N, d_out)
        s = self._slot(name, X.shape[1], G.shape[1], X.device)
        g2 = (G * G).sum(1)                                  # (N,)  D_ii = ||G_i||^2
        X2 = X * X                                           # (N, d_in)
        s["n"] += X.shape[0]
        s["x2g2"] += (X2 * g2[:, None]).sum(0).double()      # diag(X^T D X)
        s["x2"] += X2.sum(0).double()                        # diag(X^T X)
        s["xabs"] += X.abs().sum(0).double()
        s["gx"] += (G.T @ X).double()                        # G^T X = dL/dW for the summed loss
        if self.per_sequence:
            B, T = self.batch_shape
            for b in range(B):                               # one (d_out, d_in) at a time
                gs = G[b * T:(b + 1) * T].T @ X[b * T:(b + 1) * T]
                s["seq"] += (gs * gs).sum(0).double()


def _backward_passes(model, tokens, names: list[str], on_backward, before, batch_size: int, desc: str,
                     progress: bool) -> None:
    """One forward and one backward pass per batch of the *summed* next-token NLL, with
    ``on_backward(name, X, G)`` hooked on the linear layers ``names`` (:class:`LinearHooks`).

    The model runs in eval mode (no dropout: the statistics of the deployed model) and gets its
    mode back afterwards; ``before(batch)`` runs for each batch, on the model's device, first.
    """
    import torch

    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with LinearHooks(model, names, on_backward=on_backward):
            for batch in iter_batches(tokens, batch_size, desc, progress):
                batch = batch.to(device)
                before(batch)
                loss = next_token_nll(model, batch).sum()
                if not torch.isfinite(loss):
                    raise CourseError(f"the model's loss on a calibration batch is {float(loss)}; "
                                      "cannot take gradients")
                loss.backward()
    finally:
        model.train(was_training)


def _check_reached(names: list[str], reached) -> None:
    """A clear error for layers the backward pass never reached."""
    missing = [n for n in names if n not in reached]
    if missing:
        raise ModelError(f"layers={missing[:3]!r} received no gradient: they are not on the path from the "
                         "input tokens to the loss")


def collect_sensitivity(model, tokens, layers: list[str] | None = None, batch_size: int = 4,
                        per_sequence: bool = False, progress: bool = True) -> dict[str, LayerSensitivity]:
    """Accumulate ``alpha``, ``awq``, ``gptq``, ``awq_abs`` and the gradient for linear layers.

    One forward and one backward pass per batch of calibration sequences. The loss of a
    batch is the *sum* of next-token NLLs, so ``G_i`` does not depend on the batch size;
    ``grad`` is rescaled to the gradient of the *mean* NLL per predicted token.

    Args:
        model: a causal LM (``LlamaForCausalLM``) on any device.
        tokens: ``(n_seq, T)`` calibration token ids (e.g. :func:`calibration_tokens`).
        layers: linear-layer names (default: all but ``lm_head``).
        per_sequence: also compute ``alpha_seq`` (costs one ``(d_out, d_in)`` product per sequence).

    Returns:
        ``{layer name: LayerSensitivity}`` in model order.
    """
    names = layers if layers is not None else [n for n, _ in linear_layers(model)]
    acc = _Accumulator(per_sequence)
    counts = {"n_pred": 0, "n_seq": 0}

    def before(batch):
        acc.batch_shape = tuple(batch.shape)
        counts["n_pred"] += batch.shape[0] * (batch.shape[1] - 1)
        counts["n_seq"] += batch.shape[0]

    _backward_passes(model, tokens, names, acc, before, batch_size, "alpha, AWQ, GPTQ statistics", progress)
    _check_reached(names, acc.sums)
    n_pred, n_seq = counts["n_pred"], counts["n_seq"]
    out = {}
    for name in names:
        s = acc.sums[name]
        n = s["n"]
        out[name] = LayerSensitivity(
            name=name, n_tokens=n,
            alpha=(s["x2g2"] / n).cpu().numpy(), awq=(s["x2"] / n).cpu().numpy(), gptq=s["x2"].cpu().numpy(),
            awq_abs=(s["xabs"] / n).cpu().numpy(), grad=(s["gx"] / n_pred).cpu().numpy(),
            alpha_seq=(s["seq"] / n_seq).cpu().numpy() if per_sequence else None,
            n_pred=n_pred, seq_len=int(tokens.shape[1]))
    return out


@dataclass
class SequenceSensitivity:
    """``alpha`` and AWQ's proxy of one linear layer, kept per calibration sequence.

    Row ``s`` is sequence ``s``'s own estimate; the mean over any subset of rows is the
    estimate from that subset (every sequence has the same ``T`` tokens), which is what
    lesson 09 needs to ask how the estimate moves with the number of sequences.
    """
    name: str
    alpha: np.ndarray             # (n_seq, d_in): (1/T) sum_{i in s} X_ij^2 ||G_i||^2   eq. 6 per sequence
    awq: np.ndarray               # (n_seq, d_in): (1/T) sum_{i in s} X_ij^2            eq. 8 per sequence
    d_out: int


def sequence_sensitivity(model, tokens, layers: list[str] | None = None, batch_size: int = 8,
                         progress: bool = False) -> dict[str, SequenceSensitivity]:
    """Per-sequence ``alpha`` (eq. 6) and ``awq`` (eq. 8) for linear layers, from batched passes.

    For sequence ``s`` of ``T`` tokens, ``alpha^(s)_j = (1/T) sum_{i in s} X_ij^2 ||G_i||^2``, with
    ``G`` the gradient of the summed NLL (module docstring), so ``G_i`` does not depend on the
    other sequences of the batch and the mean of ``alpha^(s)`` over all sequences equals
    :func:`collect_sensitivity`'s ``alpha`` on the same tokens. One forward and backward pass
    per batch, like :func:`collect_sensitivity`; only ``(n_seq, d_in)`` sums are kept.

    Args:
        model: a causal LM.
        tokens: ``(n_seq, T)`` token ids.
        layers: linear-layer names (default: all but ``lm_head``).

    Returns:
        ``{layer name: SequenceSensitivity}`` in the order of ``layers``.
    """
    import torch

    names = layers if layers is not None else [n for n, _ in linear_layers(model)]
    rows: dict[str, dict[str, list]] = {n: {"x2g2": [], "x2": [], "d_out": 0} for n in names}
    shape = [1, 1]  # (B, T) of the batch in flight

    def record(name, X, G):  # X: (B*T, d_in)  G: (B*T, d_out)
        B, T = shape
        X2 = (X * X).reshape(B, T, -1)                       # (B, T, d_in)
        g2 = (G * G).sum(1).reshape(B, T, 1)                 # (B, T, 1)  ||G_i||^2
        rows[name]["x2g2"].append(((X2 * g2).sum(1) / T).double().cpu())   # (B, d_in)
        rows[name]["x2"].append((X2.sum(1) / T).double().cpu())
        rows[name]["d_out"] = G.shape[1]

    def before(batch):
        shape[:] = batch.shape

    _backward_passes(model, tokens, names, record, before, batch_size, "per-sequence alpha", progress)
    _check_reached(names, {n for n in names if rows[n]["x2"]})
    return {n: SequenceSensitivity(n, torch.cat(rows[n]["x2g2"]).numpy(), torch.cat(rows[n]["x2"]).numpy(),
                                   rows[n]["d_out"]) for n in names}


def subset_agreement(per_seq, ref, n: int) -> np.ndarray:
    """Spearman's rho of each disjoint ``n``-sequence estimate with a reference: lesson 09's stability measure.

    The pool ``per_seq`` (n_pool, d) holds one estimate per sequence (e.g. a
    :class:`SequenceSensitivity` row). It is cut into ``K = n_pool // n`` disjoint subsets of ``n``
    consecutive rows (rows left over are dropped); subset ``k``'s estimate is the mean of its rows,
    and

        rho_k = Spearman( mean_{s in S_k} per_seq[s],  ref ),    k = 0 .. K-1

    (Pearson's correlation of the ranks; ties get average ranks). ``ref`` (d,) should come from
    other sequences, or the agreement is inflated by shared noise.

    Returns:
        ``(K,)`` float64 array of rho_k.
    """
    from scipy.stats import rankdata

    X, r = np.asarray(per_seq, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if X.ndim != 2 or r.shape != (X.shape[1],) or X.shape[1] < 3:
        raise CourseError(f"per_seq must be (n_pool, d) and ref (d,) with d >= 3; got shapes {X.shape} and {r.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= X.shape[0]:
        raise CourseError(f"n={n!r}; allowed: an integer from 1 to n_pool={X.shape[0]}")
    K = X.shape[0] // n
    est = X[: K * n].reshape(K, n, -1).mean(axis=1)            # (K, d) subset estimates
    rx, ry = rankdata(est, axis=-1), rankdata(r)                 # (K, d), (d,)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx * rx).sum(-1) * (ry * ry).sum())


def _weight_np(W) -> np.ndarray:
    return W.detach().float().cpu().numpy() if hasattr(W, "detach") else np.asarray(W, dtype=np.float32)


def rtn_perturbation(W, bits: int = 4, group_size: int = 32) -> np.ndarray:
    """``dW = RTN(W) - W``: zero-point round-to-nearest with one (s, z) per ``group_size`` inputs of a row.

    Uses :func:`courseutils.numerics.linear.fake_quantize` (lesson 01); returns float32 (d_out, d_in).
    """
    from ..numerics.linear import fake_quantize

    W = _weight_np(W)
    return fake_quantize(W, bits=bits, scheme="zeropoint", granularity="group", group_size=group_size) - W


def noise_perturbation(W, rel: float = 0.05, seed: int = 0) -> np.ndarray:
    """Gaussian ``dW`` with RMS ``rel * RMS(W)``, the same size for every column (float32)."""
    if not (isinstance(rel, (int, float)) and rel > 0):
        raise CourseError(f"rel={rel!r}; allowed: a positive number (noise RMS relative to the weights' RMS)")
    W = _weight_np(W)
    rms = float(np.sqrt(np.mean(W.astype(np.float64) ** 2)))
    return (np.random.default_rng(seed).standard_normal(W.shape) * rel * rms).astype(np.float32)


def _as_tensor(a: np.ndarray, like):
    """``a`` as a tensor on ``like``'s device and dtype."""
    import torch

    return torch.as_tensor(a, device=like.device, dtype=like.dtype)


def _groups(d_in: int, channel_group: int) -> list[slice]:
    if not isinstance(channel_group, int) or channel_group < 1 or d_in % channel_group:
        raise CourseError(f"channel_group={channel_group!r}; allowed: a positive divisor of d_in={d_in}")
    return [slice(a, a + channel_group) for a in range(0, d_in, channel_group)]


def _check_dW(dW, module) -> np.ndarray:
    dW = _weight_np(dW)
    if dW.shape != tuple(module.weight.shape):
        raise CourseError(f"dW has shape {dW.shape}; the layer's weight has shape {tuple(module.weight.shape)} "
                          "(d_out, d_in)")
    return dW


def measure_perturbation(model, layer: str, dW, evaluator: SuffixEvaluator) -> dict:
    """Measured effect of ``W + dW`` on one layer: mean loss change and KLD, overall and per sequence.

    Returns ``{"delta_loss", "kld"}`` (floats: means over all evaluation tokens) and
    ``{"delta_loss_seq", "kld_seq"}`` (``(n_seq,)``: the same means per evaluation sequence,
    from which a standard error follows, :func:`standard_error`).
    """
    module = get_linear(model, layer)
    dW = _check_dW(dW, module)
    W = module.weight.detach()
    with swap_weight(model, layer, W + _as_tensor(dW, W)):
        dnll, kld = evaluator.measure_tokens(layer)              # (n_seq, T-1) each
    return {"delta_loss": float(dnll.mean()), "kld": float(kld.mean()),
            "delta_loss_seq": dnll.mean(1), "kld_seq": kld.mean(1)}


def standard_error(per_seq) -> float:
    """Standard error of a mean over equally long sequences: ``std(per_seq, ddof=1) / sqrt(n_seq)``.

    Sequences are the independent units (tokens of one sequence share context).
    """
    v = np.asarray(per_seq, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise CourseError(f"per_seq has shape {v.shape}; need a 1-D array of at least 2 sequences")
    return float(v.std(ddof=1) / np.sqrt(v.size))


def group_truth(model, layer: str, dW, tokens, channel_group: int = 16, evaluator: SuffixEvaluator | None = None,
                batch_size: int = 8, progress: bool = True) -> dict[str, np.ndarray]:
    """Measured effect of perturbing one group of input channels at a time.

    For each group ``J`` of ``channel_group`` consecutive input channels, run the model with
    ``W + dW[:, J]`` (every other column untouched) and record

        delta_loss_J = mean NLL(W + dW_J) - mean NLL(W),    kld_J = mean KL(p_W || p_{W+dW_J}).

    Args:
        dW: (d_out, d_in) perturbation, e.g. :func:`rtn_perturbation`.
        tokens: ``(n_seq, T)`` evaluation token ids (ignored when ``evaluator`` is given).
        evaluator: a :class:`courseutils.calib.hooks.SuffixEvaluator` of the unperturbed model on the
            evaluation tokens, to reuse across layers (only blocks from ``layer``'s on are rerun).

    Returns:
        ``{"delta_loss": (n_groups,), "kld": (n_groups,), "delta_loss_seq": (n_groups, n_seq),
        "kld_seq": (n_groups, n_seq)}``: the ``_seq`` arrays hold the same means per evaluation sequence.
    """
    from tqdm.auto import tqdm

    module = get_linear(model, layer)
    dW = _check_dW(dW, module)
    evaluator = evaluator or SuffixEvaluator(model, tokens, batch_size)
    groups = _groups(dW.shape[1], channel_group)
    rows = []
    for J in tqdm(groups, desc=f"perturbing channel groups of {layer}", disable=not progress, leave=False):
        dW_J = np.zeros_like(dW)
        dW_J[:, J] = dW[:, J]
        rows.append(measure_perturbation(model, layer, dW_J, evaluator))
    return {k: np.array([r[k] for r in rows]) for k in ("delta_loss", "kld", "delta_loss_seq", "kld_seq")}


def group_scores(stats: LayerSensitivity, dW, channel_group: int = 16) -> dict[str, np.ndarray]:
    """Each proxy's prediction for perturbing one channel group with ``dW``.

    - ``alpha`` (and ``alpha_seq``): ``score_J = sum_{j in J} (alpha_j / d_out) ||dW_{:,j}||^2``, in
      units of the mean loss up to the factor ``N / 2n`` (the module docstring derives the
      ``1/d_out``: a random column error meets one direction's worth of the ``d_out`` squared
      gradient components that ``alpha_j`` sums);
    - ``alpha_no_dout``: the same without ``1/d_out`` (the lesson's earlier formula, kept to show
      what the factor changes when layers of different ``d_out`` are compared);
    - ``awq``, ``gptq``, ``awq_abs``: ``sum_{j in J} proxy_j ||dW_{:,j}||^2``; for ``awq`` that is the
      output error energy ``E_i ||dY_i||^2`` of independent columns, what llama.cpp's imatrix weighs;
    - ``first_order``: the signed first-order prediction ``sum_{j in J} <grad_{:,j}, dW_{:,j}>`` (eq. 4).

    ``channel_group = d_in`` gives one score for the whole layer.
    """
    dW = _weight_np(dW).astype(np.float64)
    if dW.shape != stats.grad.shape:
        raise CourseError(f"dW has shape {dW.shape}; layer {stats.name!r} has weight shape {stats.grad.shape}")
    groups = _groups(dW.shape[1], channel_group)
    col2 = (dW * dW).sum(0)                                    # ||dW_{:,j}||^2  (d_in,)
    kinds = PROXIES + (("alpha_seq",) if stats.alpha_seq is not None else ())
    out = {k: np.array([(stats.proxy(k)[J] * col2[J]).sum() for J in groups]) for k in kinds}
    out["alpha_no_dout"] = out["alpha"]
    out["alpha"] = out["alpha"] / stats.d_out
    if stats.alpha_seq is not None:
        out["alpha_seq"] = out["alpha_seq"] / stats.d_out
    fo = (stats.grad * dW).sum(0)                              # <grad_j, dW_j>  (d_in,)
    out["first_order"] = np.array([fo[J].sum() for J in groups])
    return out


def rank_correlation(pred, truth) -> dict[str, float]:
    """Spearman's rho and Kendall's tau of ``pred`` against ``truth`` (scipy.stats)."""
    from scipy import stats

    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 1 or pred.size < 3:
        raise CourseError(f"pred {pred.shape} and truth {truth.shape} must be 1-D of the same length >= 3")
    if np.ptp(pred) == 0 or np.ptp(truth) == 0:
        raise CourseError("pred or truth is constant: a rank correlation is undefined")
    return {"spearman": float(stats.spearmanr(pred, truth).statistic),
            "kendall": float(stats.kendalltau(pred, truth).statistic)}


def proxy_study(model, calib_tokens, eval_tokens, layers: list[str], bits: int = 3, group_size: int = 32,
                n_groups: int = 16, truth: str = "kld", batch_size: int = 8, stats: dict | None = None,
                evaluator: SuffixEvaluator | None = None, n_boot: int = 2000, progress: bool = True) -> dict:
    """Proxies against measured truth for each layer: lesson 04's experiment in one call.

    For every layer: ``dW = rtn_perturbation(W, bits, group_size)``; its input channels are
    split into ``n_groups`` groups of ``d_in / n_groups`` consecutive channels; the measured
    :func:`group_truth` on ``eval_tokens`` and the :func:`group_scores` from
    ``calib_tokens`` (or the given ``stats``); then the rank correlation of each score with
    ``truth`` (``"kld"`` or ``"delta_loss"``) per layer and pooled over all layers' groups, each
    with a bootstrap interval over the groups (:func:`courseutils.numerics.bootstrap.spearman_ci`).
    Costs ``n_groups`` forward passes over ``eval_tokens`` per layer.

    Returns:
        ``{"layers": {name: {"channel_group", "dW", "truth": {...}, "scores": {...},
        "corr": {score: {spearman, kendall}}, "ci": {score: Interval}}},
        "overall": {score: {spearman, kendall}}, "overall_ci": {score: Interval}, "seconds"}``.
    """
    from tqdm.auto import tqdm

    from ..numerics.bootstrap import spearman_ci

    if truth not in ("kld", "delta_loss"):
        raise CourseError(f"truth={truth!r}; allowed: 'kld', 'delta_loss'")
    if not isinstance(n_groups, int) or n_groups < 3:
        raise CourseError(f"n_groups={n_groups!r}; allowed: an integer >= 3 (rank correlations need 3 points)")
    t0 = time.perf_counter()
    stats = stats or collect_sensitivity(model, calib_tokens, layers, batch_size=batch_size, progress=progress)
    evaluator = evaluator or SuffixEvaluator(model, eval_tokens, batch_size)
    result: dict = {"layers": {}}
    for name in tqdm(layers, desc="measuring true sensitivity", disable=not progress):
        W = get_linear(model, name).weight
        if W.shape[1] % n_groups:
            raise CourseError(f"n_groups={n_groups} does not divide d_in={W.shape[1]} of layer {name!r}")
        cg = W.shape[1] // n_groups
        dW = rtn_perturbation(W, bits, group_size)
        t = group_truth(model, name, dW, eval_tokens, cg, evaluator, batch_size, progress=False)
        sc = group_scores(stats[name], dW, cg)
        result["layers"][name] = {"channel_group": cg, "dW": dW, "truth": t, "scores": sc,
                                  "corr": {k: rank_correlation(v, t[truth]) for k, v in sc.items()},
                                  "ci": {k: spearman_ci(v, t[truth], n_boot=n_boot) for k, v in sc.items()}}
    pooled_truth = np.concatenate([r["truth"][truth] for r in result["layers"].values()])
    kinds = next(iter(result["layers"].values()))["scores"].keys()
    pooled = {k: np.concatenate([r["scores"][k] for r in result["layers"].values()]) for k in kinds}
    result["overall"] = {k: rank_correlation(v, pooled_truth) for k, v in pooled.items()}
    result["overall_ci"] = {k: spearman_ci(v, pooled_truth, n_boot=n_boot) for k, v in pooled.items()}
    result["seconds"] = time.perf_counter() - t0
    return result


def layer_noise_sensitivity(model, tokens, layers: list[str] | None = None, rel: float = 0.05,
                            seeds: tuple[int, ...] = (0,), batch_size: int = 8, evaluator: SuffixEvaluator | None = None,
                            progress: bool = True) -> dict[str, dict]:
    """Per-layer noise injection: Gaussian noise of RMS ``rel * RMS(W)`` on one layer at a time.

    Returns ``{layer: {"delta_loss": mean over seeds, "kld": mean over seeds,
    "delta_loss_seq": (n_seq,), "kld_seq": (n_seq,)}}``, the ``_seq`` arrays being the per-sequence
    means (averaged over seeds) from which :func:`standard_error` gives the measurement's noise.
    """
    from tqdm.auto import tqdm

    names = layers if layers is not None else [n for n, _ in linear_layers(model)]
    evaluator = evaluator or SuffixEvaluator(model, tokens, batch_size)
    out = {}
    for name in tqdm(names, desc="noise injection per layer", disable=not progress):
        W = get_linear(model, name).weight
        runs = [measure_perturbation(model, name, noise_perturbation(W, rel, seed), evaluator) for seed in seeds]
        out[name] = {k: (float(np.mean([r[k] for r in runs])) if k in ("delta_loss", "kld")
                         else np.mean([r[k] for r in runs], axis=0))
                     for k in ("delta_loss", "kld", "delta_loss_seq", "kld_seq")}
    return out


def benchmark_proxies(model: str = "tinycode", n_seq: int = 16, seq_len: int = 128, batch_size: int = 4,
                      device: str | None = None) -> dict:
    """Time :func:`collect_sensitivity` on every linear layer (all three proxies at once).

    Returns ``{"seconds", "n_layers", "n_tokens", "device", "tokens_per_second"}``; the model
    load is not timed. ``benchmarks/run.py`` reports it (budget: < 30 s on 2 CPU cores).
    """
    from ..model.loader import load_model

    m, tok = load_model(model, device=device)
    tokens = calibration_tokens(tok, n_seq=n_seq, seq_len=seq_len)
    t0 = time.perf_counter()
    stats = collect_sensitivity(m, tokens, batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "n_layers": len(stats), "n_tokens": int(tokens.numel()),
            "device": str(model_device(m)), "tokens_per_second": tokens.numel() / seconds}
