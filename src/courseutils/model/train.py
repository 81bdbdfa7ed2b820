"""Train tinycode, the course's embedded Llama model, reproducibly on the CPU.

``make model`` runs ``python -m courseutils.model.train``: it builds the corpus from the
running Python's standard library (:mod:`courseutils.model.corpus`), trains the byte-level BPE
tokenizer (:mod:`courseutils.model.tokenizer`), trains a small ``LlamaForCausalLM`` with AdamW
and a cosine schedule from fixed seeds, measures validation perplexity the way
llama-perplexity does, and writes F16 safetensors, the tokenizer and a model card.
The output directory is replaced atomically: a crash leaves the old model in place.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..core.config import tinycode_dir
from ..core.io import atomic_path
from ..numerics.metrics import make_chunks, perplexity, scored_slice, token_nll
from .corpus import corpus_fingerprint, corpus_text, split_of, stdlib_files
from .loader import TinycodeConfig, llama_config
from .tokenizer import train_tokenizer

__all__ = ["TrainConfig", "train_tinycode", "hf_chunk_logits", "hf_perplexity", "encode"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000            # optimizer steps (about 12.3M tokens, ~4.6 epochs of the corpus)
    batch_size: int = 16         # sequences per step
    seq_len: int = 256           # tokens per sequence
    lr: float = 3e-3             # peak learning rate (small models tolerate a high one)
    min_lr: float = 3e-4         # end of the cosine decay
    warmup: int = 100            # linear warm-up steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    bf16: bool = True            # bfloat16 autocast for matmuls (~1.4x faster on CPUs with AVX512-BF16)
    eval_ctx: int = 256          # validation perplexity: llama-perplexity chunks of this size
    eval_chunks: int = 40
    model: TinycodeConfig = field(default_factory=TinycodeConfig)


def encode(tokenizer, text: str) -> np.ndarray:
    """Token ids of ``text`` with BOS in front (as llama.cpp's tokenizer adds it)."""
    return np.asarray(tokenizer(text, add_special_tokens=True)["input_ids"], dtype=np.int64)


def hf_chunk_logits(model, chunk) -> np.ndarray:
    """float32 logits ``(n_ctx, V)`` of a torch causal LM on one chunk of token ids."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        ids = torch.as_tensor(np.asarray(chunk)[None], device=device)
        return model(input_ids=ids).logits[0].float().cpu().numpy()


def hf_perplexity(model, tokens, n_ctx: int, bos_id: int, n_chunks: int | None = None) -> float:
    """Perplexity of a torch model over ``tokens``, chunked and scored as llama-perplexity does."""
    chunks = make_chunks(tokens, n_ctx, bos_id, n_chunks)
    sl = scored_slice(n_ctx)
    nll = [token_nll(hf_chunk_logits(model, c)[sl], c[sl.start + 1: sl.stop + 1]) for c in chunks]
    return perplexity(np.concatenate(nll))


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def train_tinycode(out_dir: str | os.PathLike, cfg: TrainConfig = TrainConfig(), progress: bool = True,
                   corpus_root: str | None = None, max_train_chars: int | None = None) -> dict:
    """Train tinycode from scratch and write it to ``out_dir``; return the model card.

    ``max_train_chars`` limits the corpus (the tests use it for a fast few-step run).
    """
    import torch
    from safetensors.torch import save_file  # noqa: F401  (save_pretrained uses it)
    from tqdm.auto import tqdm
    from transformers import LlamaForCausalLM

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    files = [f for f in stdlib_files(corpus_root) if split_of(f.relpath) == "train"]
    docs = [f.path.read_text(encoding="utf-8", errors="replace") for f in files]
    if max_train_chars is not None:
        docs, total = [d[:max_train_chars] for d in docs], 0
        kept = []
        for d in docs:
            kept.append(d)
            total += len(d)
            if total >= max_train_chars:
                break
        docs = kept
    tokenizer = train_tokenizer(docs, vocab_size=cfg.model.vocab_size)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    # One long stream: BOS document EOS BOS document EOS ...
    stream = np.concatenate([np.append(encode(tokenizer, d), eos) for d in docs]).astype(np.int64)
    val_tokens = encode(tokenizer, corpus_text("validation", corpus_root))

    model = LlamaForCausalLM(llama_config(cfg.model, bos, eos))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    data = torch.from_numpy(stream)
    losses = []
    bar = tqdm(range(cfg.steps), desc="training tinycode", disable=not progress)
    for step in bar:
        starts = rng.integers(0, len(stream) - cfg.seq_len, size=cfg.batch_size)
        batch = torch.stack([data[s: s + cfg.seq_len] for s in starts])  # (B, T)
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        # labels = inputs: transformers shifts them by one so position t predicts token t+1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model(input_ids=batch, labels=batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(out.loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    train_seconds = time.time() - t0

    model.eval()
    model_f16 = model.to(torch.float16)
    model_f32 = LlamaForCausalLM(llama_config(cfg.model, bos, eos))
    model_f32.load_state_dict({k: v.float() for k, v in model_f16.state_dict().items()})
    model_f32.eval()
    n_chunks = min(cfg.eval_chunks, len(val_tokens) // cfg.eval_ctx)
    val_ppl = hf_perplexity(model_f32, val_tokens, cfg.eval_ctx, bos, n_chunks)

    window = max(1, cfg.steps // 40)  # the card keeps about 40 points of the loss curve
    card = {
        "name": "tinycode",
        "architecture": "LlamaForCausalLM",
        "config": asdict(cfg.model),
        "parameters": int(sum(p.numel() for p in model_f32.parameters())),
        "training": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "tokens_seen": int(cfg.steps * cfg.batch_size * cfg.seq_len),
        "train_tokens": int(len(stream)),
        "final_train_loss": float(np.mean(losses[-50:])) if losses else None,
        "validation_perplexity": round(val_ppl, 4),
        "validation_eval": {"n_ctx": cfg.eval_ctx, "n_chunks": n_chunks, "weights": "F16"},
        "train_seconds": round(train_seconds, 1),
        "corpus": corpus_fingerprint(corpus_root),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loss_curve": [round(float(np.mean(losses[i: i + window])), 4) for i in range(0, len(losses), window)],
    }
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir, "out_dir", directory=True) as tmp:
        model_f16.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # The portable class name, so older transformers (Colab's preinstalled 4.x) load it too.
        tcfg = json.loads((tmp / "tokenizer_config.json").read_text())
        tcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        (tmp / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2) + "\n")
        (tmp / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m courseutils.model.train",
                                     description="Retrain tinycode from the standard library (reproducible, CPU).")
    parser.add_argument("--out", default=str(tinycode_dir()), help="output directory (default: the package data)")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="optimizer steps (default %(default)s)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="random seed (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    card = train_tinycode(args.out, TrainConfig(steps=args.steps, seed=args.seed))
    print(f"tinycode: {card['parameters']:,} parameters, validation perplexity {card['validation_perplexity']}, "
          f"{card['train_seconds']:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
