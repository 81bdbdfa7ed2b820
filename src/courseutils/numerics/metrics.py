"""Quality metrics, computed the way llama.cpp's ``llama-perplexity`` computes them.

Perplexity (tools/perplexity/perplexity.cpp, ``perplexity()``):

1. tokenize the whole text with BOS in front; need at least ``2 * n_ctx`` tokens;
2. cut it into ``n_chunk = len(tokens) // n_ctx`` chunks of ``n_ctx`` tokens;
3. replace each chunk's first token by BOS and run the chunk from an empty cache;
4. score only the second half: logits at positions ``j = n_ctx//2 … n_ctx-2`` predict
   token ``j+1``, so each chunk contributes ``n_ctx - 1 - n_ctx//2`` tokens;
5. ``PPL = exp(mean NLL)`` over all scored tokens.

KL divergence and same-top-token rate (``--kl-divergence``) use the same positions:
``KLD_t = Σ_v p_base(v) [log p_base(v) − log p(v)]`` averaged over positions, and the
fraction of positions where both models rank the same token first.

Everything here is plain numpy on logits, so the HF model (torch) and llama.cpp share it,
except :func:`kl_divergence_torch`: the same KLD on torch tensors, for the fake-quant path
that keeps logits on the model's device (torch is imported inside it, never at import).
"""
from __future__ import annotations

import numpy as np

from ..core.errors import CourseError, EvalTextError

__all__ = ["check_n_ctx", "make_chunks", "scored_slice", "log_softmax", "token_nll", "perplexity", "kl_divergence",
           "kl_divergence_torch", "top1_agreement", "MAX_CTX"]

MAX_CTX = 1 << 16


def check_n_ctx(n_ctx) -> int:
    """Return ``n_ctx`` as an int, or raise naming the allowed range (8 … ``MAX_CTX``)."""
    if not isinstance(n_ctx, (int, np.integer)) or not 8 <= n_ctx <= MAX_CTX:
        raise CourseError(f"n_ctx={n_ctx!r} is out of range; allowed: an integer from 8 to {MAX_CTX}")
    return int(n_ctx)


def make_chunks(tokens, n_ctx: int, bos_id: int, n_chunks: int | None = None) -> np.ndarray:
    """Split a BOS-prefixed token list into llama-perplexity chunks, BOS in front of each.

    Returns an int array of shape ``(n_chunk, n_ctx)``.
    """
    n_ctx = check_n_ctx(n_ctx)
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size == 0:
        raise EvalTextError("text is empty: nothing to evaluate")
    if tokens.size < 2 * n_ctx:
        raise EvalTextError(f"text has {tokens.size} tokens; perplexity with n_ctx={n_ctx} needs at least "
                            f"{2 * n_ctx} (as llama-perplexity requires): give more text or a smaller n_ctx")
    n_chunk = tokens.size // n_ctx
    if n_chunks is not None:
        if n_chunks < 1:
            raise CourseError(f"n_chunks={n_chunks!r}; allowed: a positive integer or None")
        n_chunk = min(n_chunk, n_chunks)
    chunks = tokens[: n_chunk * n_ctx].reshape(n_chunk, n_ctx).copy()
    chunks[:, 0] = bos_id
    return chunks


def scored_slice(n_ctx: int) -> slice:
    """Logit positions that llama-perplexity scores in a chunk: ``n_ctx//2 … n_ctx-2``."""
    return slice(n_ctx // 2, n_ctx - 1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _check_logits(logits: np.ndarray, name: str) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise CourseError(f"{name} must be 2-D (positions, vocab); got shape {logits.shape}")
    if not np.isfinite(logits).all():
        raise CourseError(f"{name} contains NaN or inf; the model output is broken")
    return logits


def token_nll(logits: np.ndarray, targets) -> np.ndarray:
    """Negative log-likelihood of each target: ``-log softmax(logits[t])[targets[t]]``.

    Args:
        logits: ``(T, V)`` scores; row ``t`` predicts ``targets[t]``.
        targets: ``(T,)`` token ids.
    """
    logits = _check_logits(logits, "logits")
    targets = np.asarray(targets, dtype=np.int64)
    if targets.shape != (logits.shape[0],):
        raise CourseError(f"targets has shape {targets.shape}; expected ({logits.shape[0]},) to match logits")
    return -log_softmax(logits)[np.arange(targets.size), targets]


def perplexity(nll) -> float:
    """``PPL = exp(mean NLL)``."""
    nll = np.asarray(nll, dtype=np.float64)
    if nll.size == 0:
        raise EvalTextError("no scored tokens: perplexity is undefined")
    return float(np.exp(nll.mean()))


def kl_divergence(base_logits: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-position ``KL(p_base || p) = Σ_v p_base (log p_base − log p)`` in nats."""
    base_logits = _check_logits(base_logits, "base_logits")
    logits = _check_logits(logits, "logits")
    if base_logits.shape != logits.shape:
        raise CourseError(f"base_logits {base_logits.shape} and logits {logits.shape} must have the same shape")
    lp_base, lp = log_softmax(base_logits), log_softmax(logits)
    return np.maximum((np.exp(lp_base) * (lp_base - lp)).sum(axis=-1), 0.0)


def kl_divergence_torch(base_logits, logits):
    """:func:`kl_divergence` on torch tensors: per-position ``KL(p_base || p)`` in nats.

    ``KL_t = Σ_v p_base(v) [log p_base(v) − log p(v)]`` with both log-softmaxes taken in
    float64 (max-subtracted, so logits of any size are safe; the KL of a small
    perturbation is second order in the logit change, and float32 round-off of ~1e-7
    nats would swamp it). Clamped at 0 against round-off, as the numpy version.

    Args:
        base_logits, logits: ``(..., V)`` tensors of the same shape, any device/dtype.
    Returns:
        A float64 tensor ``(...)`` on the inputs' device.
    """
    import torch

    if base_logits.shape != logits.shape:
        raise CourseError(f"base_logits {tuple(base_logits.shape)} and logits {tuple(logits.shape)} "
                          "must have the same shape")
    lp_base = torch.log_softmax(base_logits.to(torch.float64), dim=-1)   # (..., V)
    lp = torch.log_softmax(logits.to(torch.float64), dim=-1)             # (..., V)
    return (lp_base.exp() * (lp_base - lp)).sum(-1).clamp_min(0.0)


def top1_agreement(base_logits: np.ndarray, logits: np.ndarray) -> float:
    """Fraction of positions where both models put the same token first."""
    base_logits = _check_logits(base_logits, "base_logits")
    logits = _check_logits(logits, "logits")
    return float((base_logits.argmax(-1) == logits.argmax(-1)).mean())
