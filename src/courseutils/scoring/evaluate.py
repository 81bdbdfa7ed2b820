"""Evaluate GGUF models in llama.cpp: perplexity, KLD and top-1 agreement against a base.

The numbers follow ``llama-perplexity`` exactly (see :mod:`courseutils.numerics.metrics` for the
chunking); ``python -m courseutils perplexity`` prints what this module computes.
"""
from __future__ import annotations

import os

import numpy as np

from ..core.errors import CourseError
from ..llamacpp.bridge import LlamaCpp
from ..numerics.metrics import kl_divergence, make_chunks, perplexity, scored_slice, token_nll

__all__ = ["scored_logits", "perplexity_gguf", "compare_logits"]


def scored_logits(llm: LlamaCpp, chunks: np.ndarray, progress: bool = False):
    """Yield, per chunk, ``(logits at the scored positions, their target tokens)``.

    Shapes: logits ``(n_ctx - 1 - n_ctx//2, V)``, targets ``(n_ctx - 1 - n_ctx//2,)``.
    """
    from tqdm.auto import tqdm

    n_ctx = chunks.shape[1]
    if n_ctx > llm.n_ctx:
        raise CourseError(f"n_ctx={n_ctx} is larger than the model's context ({llm.n_ctx})")
    sl = scored_slice(n_ctx)
    for chunk in tqdm(chunks, desc="chunks", disable=not progress, leave=False):
        yield llm.logits(chunk)[sl], chunk[sl.start + 1: sl.stop + 1]


def compare_logits(base_logits: np.ndarray, logits: np.ndarray) -> dict:
    """Mean KLD, its 99th percentile and top-1 agreement of two ``(T, V)`` logit arrays."""
    kld = kl_divergence(base_logits, logits)
    same = base_logits.argmax(-1) == logits.argmax(-1)
    return {"kld": kld, "same_top": same}


def perplexity_gguf(path: str | os.PathLike, text: str, n_ctx: int = 256, base: str | os.PathLike | None = None,
                    n_chunks: int | None = None, device: str | None = None, progress: bool = False) -> dict:
    """Perplexity of a GGUF model on ``text``, and with ``base`` also KLD and top-1 agreement.

    Returns a dict with ``ppl``, ``n_ctx``, ``n_chunks``, ``n_scored`` and, when ``base``
    is given, ``base_ppl``, ``kld`` (mean, nats), ``kld_p99`` and ``top1_agreement``.
    """
    if not isinstance(text, str) or not text.strip():
        raise CourseError("text is empty: give the text to evaluate")
    llm = LlamaCpp(path, n_ctx=n_ctx, device=device)
    chunks = make_chunks(llm.tokenize(text), n_ctx, llm.bos_id, n_chunks)
    base_llm = None
    if base is not None:
        base_llm = LlamaCpp(base, n_ctx=n_ctx, device=device)
        if base_llm.n_vocab != llm.n_vocab:
            raise CourseError(f"base has a vocabulary of {base_llm.n_vocab} tokens, the model {llm.n_vocab}: "
                              "KLD needs the same tokenizer")
    nll, base_nll, kld, same = [], [], [], []
    base_iter = scored_logits(base_llm, chunks) if base_llm else None
    for logits, targets in scored_logits(llm, chunks, progress):
        nll.append(token_nll(logits, targets))
        if base_iter is not None:
            base_logits, _ = next(base_iter)
            base_nll.append(token_nll(base_logits, targets))
            cmp = compare_logits(base_logits, logits)
            kld.append(cmp["kld"])
            same.append(cmp["same_top"])
    result = {"ppl": perplexity(np.concatenate(nll)), "n_ctx": n_ctx, "n_chunks": int(len(chunks)),
              "n_scored": int(sum(len(x) for x in nll))}
    if base_llm is not None:
        kld_all = np.concatenate(kld)
        result.update(base_ppl=perplexity(np.concatenate(base_nll)), kld=float(kld_all.mean()),
                      kld_p99=float(np.percentile(kld_all, 99)), top1_agreement=float(np.concatenate(same).mean()))
        base_llm.close()
    llm.close()
    return result
