"""Score a torch model (e.g. fake-quantized by RTN/GPTQ/AWQ) exactly where llama.cpp is scored.

Same text, same chunks, same scored positions as :func:`courseutils.scoring.evaluate.perplexity_gguf`
(llama-perplexity's rules, :mod:`courseutils.numerics.metrics`): chunks of ``n_ctx`` tokens
with BOS in front, the second half of each chunk scored. So a GPTQ model in torch and a
Q4_K_M file in llama.cpp are compared on the same tokens, and every per-token array can
feed the paired bootstrap (:mod:`courseutils.numerics.bootstrap`).

Per scored token t of a chunk, with p the reference model's and q the scored model's
next-token distribution:

    nll_t = -log q(x_{t+1}),   KLD_t = sum_v p_v (log p_v - log q_v),   same_top_t = [argmax p = argmax q]

:func:`block_output_errors` looks inside instead: how far each decoder block's output has
drifted from the reference model's, block by block (lesson 09's error accumulation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import CourseError
from ..numerics.metrics import kl_divergence_torch, make_chunks, scored_slice

__all__ = ["TokenScores", "text_chunks", "score_torch", "block_output_errors"]


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
            zq = model(input_ids=batch, use_cache=False).logits[:, sl].double()    # (b, s, V)
            lq = F.log_softmax(zq, dim=-1)                                          # (b, s, V)
            out["nll"].append(-lq.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy())
            if base is not None:
                zp = (base(input_ids=batch.to(next(base.parameters()).device), use_cache=False)
                      .logits[:, sl].double().to(device))                              # (b, s, V)
                lp = F.log_softmax(zp, dim=-1)
                out["base_nll"].append(-lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy())
                out["kld"].append(kl_divergence_torch(zp, zq).cpu().numpy())        # (b, s)
                out["same_top"].append((lp.argmax(-1) == lq.argmax(-1)).cpu().numpy())
    joined = {k: np.concatenate(v) if v else None for k, v in out.items()}
    return TokenScores(**joined)


def _block_outputs(model, tokens, batch_size: int) -> list:
    """Every decoder block's output on ``tokens``: ``[(n_seq, T, d_model)]`` per block, float64 on the CPU."""
    import torch

    from ..calib.capture import decoder_blocks
    from ..calib.hooks import iter_batches, model_device

    blocks = decoder_blocks(model)
    outs: list[list] = [[] for _ in blocks]

    def keep(i):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            outs[i].append(h.detach().to("cpu", torch.float64))
        return hook

    handles = [b.register_forward_hook(keep(i)) for i, b in enumerate(blocks)]
    device = model_device(model)
    try:
        with torch.no_grad():
            for batch in iter_batches(tokens, batch_size, None, False):
                model(input_ids=batch.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(o) for o in outs]


def block_output_errors(model, qmodel, tokens, batch_size: int = 8) -> np.ndarray:
    """Relative squared error of every decoder block's output, per sequence: ``(n_blocks, n_seq)``.

    For block ``l`` and sequence ``s``, with ``H_{l,s}`` (T, d_model) the hidden states that leave
    block ``l`` in the reference ``model`` and ``H^q_{l,s}`` those of ``qmodel``, both run end to end
    on the same tokens,

        e_{l,s} = ||H^q_{l,s} - H_{l,s}||_F^2 / ||H_{l,s}||_F^2 .

    Each model runs on its own hidden states, so ``e_l`` holds the error block ``l`` makes *and*
    everything blocks ``0..l-1`` passed on to it: the accumulated error that lesson 09 plots
    against depth. Per-sequence values let the lesson put a bootstrap interval on each block's
    mean (:func:`courseutils.numerics.bootstrap.mean_ci`).

    Args:
        model, qmodel: two Llama-style models with the same number of decoder blocks and the same
            vocabulary (e.g. a model and its fake-quantized copy).
        tokens: ``(n_seq, T)`` token ids.
    """
    from ..calib.capture import decoder_blocks

    n_ref, n_q = len(decoder_blocks(model)), len(decoder_blocks(qmodel))
    if n_ref != n_q:
        raise CourseError(f"qmodel has {n_q} decoder blocks and model has {n_ref}: "
                          "the two models must have the same architecture")
    ref, got = _block_outputs(model, tokens, batch_size), _block_outputs(qmodel, tokens, batch_size)
    errors = np.empty((n_ref, ref[0].shape[0]))
    for i, (h, hq) in enumerate(zip(ref, got)):   # h, hq: (n_seq, T, d_model)
        num = ((hq - h) ** 2).sum(dim=(1, 2))
        den = (h ** 2).sum(dim=(1, 2))
        errors[i] = (num / den).numpy()
    return errors
