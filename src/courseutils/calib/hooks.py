"""Plumbing shared by every calibration-based algorithm: linear layers, hooks, batches.

Sensitivity (lesson 04), Hessians (lesson 05), GPTQ and AWQ (lessons 06-07) all need the
same three things from a model:

- the list of its ``nn.Linear`` layers, found by walking the module tree (so the same
  code serves tinycode and any hub Llama / Qwen / SmolLM2 model);
- for each layer and calibration batch, the layer input ``X`` (tokens, d_in) and the
  gradient ``G = dL/dY`` (tokens, d_out) of the loss with respect to its output
  ``Y = X W^T``, handed to a callback one batch at a time (never stored in full);
- calibration token batches cut from ``corpus_text("calibration")``.

The math modules receive plain tensors from here; nothing in this module knows what a
Hessian or a saliency is. The device is the model's own: batches are moved to it.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from ..core.errors import CourseError, ModelError
from ..numerics.metrics import kl_divergence_torch

__all__ = ["linear_layers", "get_linear", "calibration_tokens", "iter_batches", "LinearHooks",
           "swap_weight", "model_device", "next_token_nll", "eval_loss_kld", "SuffixEvaluator"]

ForwardFn = Callable[[str, "object"], None]            # (name, X)          X: (N, d_in)
BackwardFn = Callable[[str, "object", "object"], None]  # (name, X, G)       G: (N, d_out)


def linear_layers(model, include: Sequence[str] | None = None,
                  exclude: Sequence[str] = ("lm_head",)) -> list[tuple[str, "object"]]:
    """All ``nn.Linear`` modules of ``model`` as ``(qualified name, module)``, in model order.

    Args:
        model: any ``torch.nn.Module`` (a ``LlamaForCausalLM`` for the course).
        include: keep only layers whose name contains one of these substrings
            (e.g. ``["mlp.down_proj"]``); ``None`` keeps all.
        exclude: drop layers whose name contains one of these substrings. The default
            drops ``lm_head`` (tied to the embedding in tinycode; llama.cpp keeps it in
            higher precision).
    """
    import torch

    found = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if include is not None:
        found = [(n, m) for n, m in found if any(s in n for s in include)]
    found = [(n, m) for n, m in found if not any(s in n for s in exclude)]
    if not found:
        raise ModelError(f"include={include!r}, exclude={tuple(exclude)!r}: the model has no nn.Linear layer "
                         f"left to hook; names look like {[n for n, _ in model.named_modules()][1:4]}")
    return found


def get_linear(model, name: str):
    """The ``nn.Linear`` called ``name`` (e.g. ``"model.layers.0.mlp.down_proj"``)."""
    import torch

    try:
        module = model.get_submodule(name)
    except AttributeError as exc:
        names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
        raise ModelError(f"layer={name!r} is not a module of this model; linear layers are e.g. {names[:3]}") from exc
    if not isinstance(module, torch.nn.Linear):
        raise ModelError(f"layer={name!r} is a {type(module).__name__}, not an nn.Linear")
    return module


def model_device(model):
    """The device of the model's first parameter (where batches must go)."""
    return next(model.parameters()).device


def calibration_tokens(tokenizer, n_seq: int = 8, seq_len: int = 128, split: str = "calibration",
                       offset: int = 0, kind: str = "all") -> "object":
    """Cut ``n_seq`` sequences of ``seq_len`` tokens from a corpus split, BOS in front of each.

    The split's text is tokenized (with :func:`courseutils.model.train.encode`), cut into
    consecutive windows, and each window's first token is replaced by BOS, as
    llama-perplexity does with its chunks.

    Args:
        tokenizer: the model's tokenizer.
        n_seq: number of sequences; seq_len: tokens per sequence (BOS included).
        split: ``"calibration"`` (default), ``"validation"`` or ``"train"``.
        offset: number of windows to skip first (to draw a disjoint evaluation set
            from the same split).
        kind: ``"all"`` (the files as they are), ``"code"`` (without docstrings and comments)
            or ``"prose"`` (only those): :func:`courseutils.model.corpus.corpus_text`.

    Returns:
        ``torch.LongTensor`` of shape ``(n_seq, seq_len)`` on the CPU.
    """
    import torch

    from ..model.corpus import corpus_text
    from ..model.train import encode

    if not isinstance(n_seq, int) or n_seq < 1:
        raise CourseError(f"n_seq={n_seq!r}; allowed: a positive integer")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise CourseError(f"seq_len={seq_len!r}; allowed: an integer >= 2")
    if not isinstance(offset, int) or offset < 0:
        raise CourseError(f"offset={offset!r}; allowed: a non-negative integer")
    need = (n_seq + offset) * seq_len
    # About 3 characters per token for tinycode; ask for generous text, then check.
    text = corpus_text(split, max_chars=need * 6 + 10_000, kind=kind)
    ids = encode(tokenizer, text)
    if ids.size < need:
        raise CourseError(f"n_seq={n_seq}, seq_len={seq_len}, offset={offset} need {need} tokens, "
                          f"but the {split!r} split ({kind}) gives only {ids.size}; ask for fewer")
    chunks = ids[offset * seq_len: need].reshape(n_seq, seq_len).copy()
    bos = tokenizer.bos_token_id
    if bos is not None:
        chunks[:, 0] = bos
    return torch.from_numpy(chunks)


def _check_tokens(tokens) -> "object":
    import torch

    tokens = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, torch.Tensor) else tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise CourseError(f"tokens has shape {tuple(tokens.shape)}; expected (n_seq >= 1, seq_len >= 2) "
                          "token ids: the calibration data is empty or not batched")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise CourseError(f"tokens has dtype {tokens.dtype}; expected integer token ids")
    return tokens.long()


def iter_batches(tokens, batch_size: int = 4, desc: str | None = None, progress: bool = True) -> Iterator:
    """Yield ``(B, T)`` slices of ``tokens`` with a tqdm bar (shown when ``desc`` is given)."""
    from tqdm.auto import tqdm

    tokens = _check_tokens(tokens)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CourseError(f"batch_size={batch_size!r}; allowed: a positive integer")
    starts = range(0, tokens.shape[0], batch_size)
    for s in tqdm(starts, desc=desc, disable=not progress or desc is None, leave=False):
        yield tokens[s: s + batch_size]


def _at_least_f32(t):
    """float32 for half-precision tensors; float64 stays float64 (the tests' exact checks)."""
    import torch

    return t if t.dtype == torch.float64 else t.float()


def next_token_nll(model, batch):
    """Per-token next-token NLL ``(B, T-1)`` of a ``(B, T)`` batch, differentiable.

    ``nll[b, t] = -log p(batch[b, t+1] | batch[b, :t+1])``; callers sum or average it.
    """
    import torch.nn.functional as F

    logits = _at_least_f32(model(input_ids=batch, use_cache=False).logits[:, :-1])  # (B, T-1, V)
    return F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # (B, T-1)


class LinearHooks:
    """Context manager that hands each linear layer's ``X`` (and ``G``) to callbacks.

    ``on_forward(name, X)`` runs in the forward pass with ``X`` the layer input flattened
    to ``(N, d_in)`` (N = batch x sequence tokens). ``on_backward(name, X, G)`` runs when
    ``loss.backward()`` reaches the layer output ``Y``, with ``G = dL/dY`` flattened to
    ``(N, d_out)``. Both receive tensors detached from the graph, on the model's device,
    in float32 (float64 for a float64 model).

    With ``on_backward`` set, parameters are frozen for the duration (so no ``.grad`` is
    allocated: only activation gradients flow, which is all the statistics need) and the
    input embeddings are marked as requiring grad so that a graph exists. Everything is
    restored on exit.
    """

    def __init__(self, model, layers: Sequence[str] | None = None, on_forward: ForwardFn | None = None,
                 on_backward: BackwardFn | None = None):
        if on_forward is None and on_backward is None:
            raise CourseError("on_forward=None and on_backward=None: give at least one callback")
        self.model = model
        self.names = list(layers) if layers is not None else [n for n, _ in linear_layers(model)]
        self.modules = [get_linear(model, n) for n in self.names]
        self.on_forward, self.on_backward = on_forward, on_backward
        self._handles: list = []
        self._requires_grad: list = []

    def _forward_hook(self, name: str):
        def hook(module, inputs, output):
            X = _at_least_f32(inputs[0].detach().reshape(-1, inputs[0].shape[-1]))  # (N, d_in)
            if self.on_forward is not None:
                self.on_forward(name, X)
            if self.on_backward is not None and output.requires_grad:
                def grad_hook(grad, X=X):
                    self.on_backward(name, X, _at_least_f32(grad.detach().reshape(-1, grad.shape[-1])))  # (N, d_out)
                output.register_hook(grad_hook)
        return hook

    def __enter__(self) -> "LinearHooks":
        if self.on_backward is not None:
            params = list(self.model.parameters())
            self._requires_grad = [p.requires_grad for p in params]
            for p in params:
                p.requires_grad_(False)
            emb = self.model.get_input_embeddings()
            self._handles.append(emb.register_forward_hook(lambda m, i, out: out.requires_grad_(True)))
        for name, module in zip(self.names, self.modules):
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._requires_grad:
            for p, flag in zip(self.model.parameters(), self._requires_grad):
                p.requires_grad_(flag)
            self._requires_grad = []


@contextmanager
def swap_weight(model, name: str, W):
    """Temporarily replace the weight of linear layer ``name`` by ``W`` (same shape).

    The original is restored on exit, even after an exception.
    """
    import torch

    module = get_linear(model, name)
    W = torch.as_tensor(W)
    if tuple(W.shape) != tuple(module.weight.shape):
        raise CourseError(f"W has shape {tuple(W.shape)}; layer {name!r} has weight shape "
                          f"{tuple(module.weight.shape)} (d_out, d_in)")
    original = module.weight.data.clone()
    with torch.no_grad():
        module.weight.data.copy_(W.to(module.weight.device, module.weight.dtype))
    try:
        yield module
    finally:
        with torch.no_grad():
            module.weight.data.copy_(original)


def _token_nll_kld(logits, batch, ref_logits=None):
    """Per-token next-token NLL and KL(ref || p), both ``(B, T-1)`` float64, from ``(B, T, V)`` logits.

    Log-probabilities are formed in float64: the KL of a small perturbation is second order
    in the logit change, and float32 log-softmax round-off (~1e-7 nats) would swamp it.
    ``kld`` is ``None`` without ``ref_logits``.
    """
    import torch
    import torch.nn.functional as F

    logp = F.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)     # (B, T-1, V)
    nll = -logp.gather(-1, batch[:, 1:, None]).squeeze(-1)             # (B, T-1)
    kld = None
    if ref_logits is not None:
        kld = kl_divergence_torch(ref_logits[:, :-1], logits[:, :-1])  # (B, T-1), float64
    return nll, kld


def _nll_kld(logits, batch, ref_logits=None) -> tuple[float, float, int]:
    """Summed next-token NLL, summed KL(ref || p) and the count, from ``(B, T, V)`` logits."""
    nll, kld = _token_nll_kld(logits, batch, ref_logits)
    return float(nll.sum()), (0.0 if kld is None else float(kld.sum())), nll.numel()


def eval_loss_kld(model, tokens, base_logits: list | None = None, batch_size: int = 8,
                  desc: str | None = None, progress: bool = True) -> tuple[float, float, list]:
    """Mean next-token NLL of the model on ``tokens`` and mean KL(base || model).

    Args:
        tokens: ``(n_seq, T)`` token ids.
        base_logits: per-batch logits of the reference model as returned by an earlier
            call (third element); ``None`` gives KLD 0 (this is the reference).

    Returns:
        ``(mean_nll, mean_kld, logits)`` with ``logits`` the list of per-batch logits
        ``(B, T, V)`` (kept on the model's device) to pass as ``base_logits`` later.
    """
    import torch

    device = model_device(model)
    total_nll, total_kld, count, kept = 0.0, 0.0, 0, []
    with torch.no_grad():
        for b, batch in enumerate(iter_batches(tokens, batch_size, desc, progress)):
            batch = batch.to(device)
            logits = model(input_ids=batch, use_cache=False).logits
            nll, kld, n = _nll_kld(logits, batch, None if base_logits is None else base_logits[b])
            total_nll, total_kld, count = total_nll + nll, total_kld + kld, count + n
            kept.append(logits)
    return total_nll / count, total_kld / count, kept


BLOCK = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class SuffixEvaluator:
    """Loss and KLD of a perturbed model, recomputed from the perturbed decoder block onward.

    A change inside decoder block l leaves blocks 0..l-1 untouched, so only blocks l..L-1,
    the final norm and ``lm_head`` need to run again. One full pass over ``tokens`` records
    every block's input hidden states and the keyword arguments the model hands to it
    (attention mask, rotary embeddings, ...), plus the reference logits.
    Works on Llama-style models (``model.model.layers``, ``model.model.norm``, ``model.lm_head``).

    ``measure(layer)`` then gives ``(mean NLL change, mean KL(reference || model))`` for the
    model as it is now, assuming only parameters of ``layer``'s block differ from the reference.
    """

    def __init__(self, model, tokens, batch_size: int = 8):
        import torch

        body = getattr(model, "model", None)
        if body is None or not all(hasattr(body, a) for a in ("layers", "norm")) or not hasattr(model, "lm_head"):
            raise ModelError(f"{type(model).__name__} has no model.layers / model.norm / lm_head; "
                             "SuffixEvaluator needs a Llama-style causal LM")
        self.model, self.blocks, self.device = model, body.layers, model_device(model)
        self.batches = [b.to(self.device) for b in iter_batches(tokens, batch_size, None, False)]
        self.inputs: list[list[tuple]] = []        # per batch, per block: (args, kwargs)
        self.ref: list = []                        # per batch: reference logits (B, T, V)
        captured, nll = [], []

        def grab(module, args, kwargs):
            captured.append((tuple(a.detach() if torch.is_tensor(a) else a for a in args), dict(kwargs)))

        handles = [blk.register_forward_pre_hook(grab, with_kwargs=True) for blk in self.blocks]
        try:
            with torch.no_grad():
                for batch in self.batches:
                    captured.clear()
                    logits = model(input_ids=batch, use_cache=False).logits
                    nll.append(_token_nll_kld(logits, batch)[0])
                    self.inputs.append(list(captured))
                    self.ref.append(logits)
        finally:
            for h in handles:
                h.remove()
        if any(len(x) != len(self.blocks) for x in self.inputs):
            raise ModelError("the model did not call every decoder block once per forward pass; "
                             "SuffixEvaluator cannot replay it")
        #: (n_seq, T-1) per-token NLL of the reference model, float64 numpy
        self.base_tokens = torch.cat(nll).cpu().numpy()
        self.base_nll = float(self.base_tokens.mean())

    def block_of(self, layer: str) -> int:
        """Index of the decoder block that holds ``layer`` (from ``...layers.<i>....`` in its name)."""
        m = BLOCK.search(layer)
        if m is None or int(m.group(1)) >= len(self.blocks):
            raise ModelError(f"layer={layer!r} is not inside a decoder block 'model.layers.<i>'")
        return int(m.group(1))

    def measure_tokens(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-token ``(NLL - reference NLL, KL(reference || model))``, each ``(n_seq, T-1)`` float64 numpy.

        Rerunning from ``layer``'s block. Per-token values let a lesson put an interval on a
        loss change (resampling sequences, :mod:`courseutils.numerics.bootstrap`): the measured
        change is itself an estimate from a finite text.
        """
        import torch

        start = self.block_of(layer)
        nll, kld = [], []
        with torch.no_grad():
            for batch, inputs, ref in zip(self.batches, self.inputs, self.ref):
                h = None
                for blk, (args, kwargs) in zip(self.blocks[start:], inputs[start:]):
                    if args:          # hidden states passed positionally (transformers' Llama does)
                        h = args[0] if h is None else h
                        out = blk(h, *args[1:], **kwargs)
                    else:
                        h = kwargs["hidden_states"] if h is None else h
                        out = blk(**{**kwargs, "hidden_states": h})
                    h = out[0] if isinstance(out, tuple) else out
                logits = self.model.lm_head(self.model.model.norm(h))
                n, k = _token_nll_kld(logits, batch, ref)
                nll.append(n)
                kld.append(k)
        return torch.cat(nll).cpu().numpy() - self.base_tokens, torch.cat(kld).cpu().numpy()

    def measure(self, layer: str) -> tuple[float, float]:
        """``(mean NLL - reference mean NLL, mean KL(reference || model))`` rerunning from ``layer``'s block."""
        dnll, kld = self.measure_tokens(layer)
        return float(dnll.mean()), float(kld.mean())
