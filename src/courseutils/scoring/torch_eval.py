"""Score a torch model (e.g. fake-quantized by RTN/GPTQ/AWQ) exactly where llama.cpp is scored.

Same text, same chunks, same scored positions as :func:`courseutils.scoring.evaluate.perplexity_gguf`
(llama-perplexity's rules, :mod:`courseutils.numerics.metrics`): chunks of ``n_ctx`` tokens
with BOS in front, the second half of each chunk scored. So a GPTQ model in torch and a
Q4_K_M file in llama.cpp are compared on the same tokens, and every per-token array can
feed the paired bootstrap (:mod:`courseutils.numerics.bootstrap`).

Per scored token t of a chunk, with p the reference model's and q the scored model's
next-token distribution:

    nll_t = -log q(x_{t+1}),   KLD_t = sum_v p_v (log p_v - log q_v),   same_top_t = [argmax p = argmax q]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError
from ..numerics.metrics import make_chunks, scored_slice

__all__ = ["TokenScores", "text_chunks", "score_torch"]


@dataclass
class TokenScores:
    """Per-token results, each ``(n_chunks, n_scored)``; ``kld``/``same_top`` only with a reference."""

    nll: np.ndarray
    base_nll: np.ndarray | None = None
    kld: np.ndarray | None = None
    same_top: np.ndarray | None = None

    @property
    def ppl(self) -> float:
        """exp(mean NLL) over every scored token."""
        return float(np.exp(self.nll.mean()))


def text_chunks(tokenizer, text: str, n_ctx: int = 256, n_chunks: int | None = None) -> np.ndarray:
    """``text`` tokenized as llama.cpp does for perplexity (BOS first), cut into ``(n_chunks, n_ctx)``."""
    if not isinstance(text, str) or not text.strip():
        raise CourseError("text is empty: give the text to evaluate")
    bos = tokenizer.bos_token_id
    if bos is None:
        raise CourseError("the tokenizer has no BOS token; llama-perplexity's chunks start with one")
    ids = [bos] + tokenizer(text, add_special_tokens=False)["input_ids"]
    return make_chunks(ids, n_ctx, bos, n_chunks)


def score_torch(model, chunks: np.ndarray, base=None, batch_size: int = 4, progress: bool = False) -> TokenScores:
    """Per-token NLL of ``model`` on llama-perplexity ``chunks``; with ``base`` also KLD and top-1 agreement.

    Args:
        model: a ``*ForCausalLM`` (on any device; logits are compared in float64 on the CPU side).
        chunks: ``(n_chunks, n_ctx)`` token ids from :func:`text_chunks` or ``make_chunks``.
        base: the reference model (e.g. the unquantized one), same tokenizer.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    chunks = np.asarray(chunks)
    if chunks.ndim != 2 or chunks.shape[1] < 4:
        raise CourseError(f"chunks must be (n_chunks, n_ctx) with n_ctx >= 4; got shape {chunks.shape}")
    sl = scored_slice(chunks.shape[1])
    out: dict[str, list] = {"nll": [], "base_nll": [], "kld": [], "same_top": []}
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(chunks), batch_size), desc="scoring (torch)", disable=not progress):
        batch = torch.as_tensor(chunks[start:start + batch_size], device=device)  # (b, n_ctx)
        targets = batch[:, sl.start + 1: sl.stop + 1]  # (b, n_scored)
        with torch.no_grad():
            lq = F.log_softmax(model(input_ids=batch, use_cache=False).logits[:, sl].double(), dim=-1)  # (b, s, V)
            out["nll"].append(-lq.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy())
            if base is not None:
                lp = F.log_softmax(base(input_ids=batch.to(next(base.parameters()).device), use_cache=False)
                                   .logits[:, sl].double().to(device), dim=-1)
                out["base_nll"].append(-lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy())
                out["kld"].append((lp.exp() * (lp - lq)).sum(-1).clamp_min(0).cpu().numpy())
                out["same_top"].append((lp.argmax(-1) == lq.argmax(-1)).cpu().numpy())
    joined = {k: np.concatenate(v) if v else None for k, v in out.items()}
    return TokenScores(**joined)
