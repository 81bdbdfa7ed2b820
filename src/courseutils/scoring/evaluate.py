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
from .torch_eval import TokenScores

__all__ = ["scored_logits", "perplexity_gguf", "compare_logits", "evaluate_ggufs"]


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


def evaluate_ggufs(paths: dict, text: str, base: str | os.PathLike, n_ctx: int = 256, n_chunks: int | None = None,
                   device: str | None = None, progress: bool = False) -> tuple[np.ndarray, dict]:
    """Per-token scores of several GGUF files against one base, the base run only once.

    What :func:`perplexity_gguf` computes for one file (llama-perplexity's chunks and scored
    positions), kept per token so that any two variants can be compared with a paired
    bootstrap over chunks (:mod:`courseutils.numerics.bootstrap`).

    Args:
        paths: ``{label: GGUF path}``.
        base: the reference GGUF (e.g. F16); its logits are computed once and kept in memory.

    Returns:
        ``(chunks, {label: TokenScores})``: the ``(n_chunks, n_ctx)`` token ids (feed them to
        :func:`courseutils.scoring.torch_eval.score_torch` to score a torch model on the same
        tokens) and, per label, ``nll``, ``base_nll``, ``kld`` and ``same_top``, each
        ``(n_chunks, n_scored)``.
    """
    from tqdm.auto import tqdm

    if not isinstance(paths, dict) or not paths:
        raise CourseError("paths must be a non-empty {label: GGUF path} dict")
    if not isinstance(text, str) or not text.strip():
        raise CourseError("text is empty: give the text to evaluate")
    with LlamaCpp(base, n_ctx=n_ctx, device=device) as base_llm:
        chunks = make_chunks(base_llm.tokenize(text), n_ctx, base_llm.bos_id, n_chunks)
        base_logits, targets = zip(*scored_logits(base_llm, chunks))   # per chunk: (n_scored, V), (n_scored,)
        n_vocab = base_llm.n_vocab
    base_nll = np.stack([token_nll(z, t) for z, t in zip(base_logits, targets)])   # (n_chunks, n_scored)
    out = {}
    for label, path in tqdm(paths.items(), desc="evaluating", disable=not progress):
        with LlamaCpp(path, n_ctx=n_ctx, device=device) as llm:
            if llm.n_vocab != n_vocab:
                raise CourseError(f"paths[{label!r}] has a vocabulary of {llm.n_vocab} tokens, the base {n_vocab}: "
                                  "KLD needs the same tokenizer")
            nll, kld, same = [], [], []
            for (logits, t), z0 in zip(scored_logits(llm, chunks), base_logits):
                nll.append(token_nll(logits, t))
                cmp = compare_logits(z0, logits)
                kld.append(cmp["kld"])
                same.append(cmp["same_top"])
        out[label] = TokenScores(nll=np.stack(nll), base_nll=base_nll, kld=np.stack(kld), same_top=np.stack(same))
    return chunks, out
