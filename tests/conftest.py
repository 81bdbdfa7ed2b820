"""Shared fixtures. Artifacts go to a cache inside the checkout (.cache/, git-ignored) unless
COURSE_CACHE is set, so a second `make test` reuses exported/quantized GGUF files (their names
carry a fingerprint of the weights, so a retrained model never reuses stale ones). Notebook
kernels started by nbval inherit these variables."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests/fixtures holds data, not tests: frozen quiz notebooks (nbval would run them) and scripts.
collect_ignore_glob = ["fixtures/*"]
os.environ.setdefault("COURSE_CACHE", str(ROOT / ".cache" / "course"))
os.environ.setdefault("COURSE_DEVICE", "auto")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A private hub cache: test_model.py plants a fake hub snapshot there (never the user's cache).
os.environ["HF_HUB_CACHE"] = str(ROOT / ".cache" / "hf-hub-test")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# As the Makefile does: OpenMP threads (torch's, llama.cpp's) that spin while idle cost 4-25x on a
# busy 2-core machine. Set before torch or llama.cpp is imported, so their runtimes read it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def tiny_random_llama(n_seq: int, seq_len: int):
    """A 2-layer float64 Llama with 16 hidden units (exact Hessians are cheap) and random tokens."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).to(torch.float64).eval()
    tokens = torch.randint(0, 64, (n_seq, seq_len), generator=torch.Generator().manual_seed(1))
    return model, tokens


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tinycode():
    """(model, tokenizer) of the shipped tinycode, loaded once per session."""
    from courseutils.model.loader import load_model

    return load_model("tinycode", device="cpu")


@pytest.fixture(scope="session")
def val_text() -> str:
    from courseutils.model.corpus import corpus_text

    return corpus_text("validation")


@pytest.fixture(scope="session")
def f16_gguf() -> Path:
    from courseutils.llamacpp import get_gguf

    return get_gguf("tinycode", "F16")


@pytest.fixture()
def tiny_llama_dir(tmp_path) -> Path:
    """A small random Llama with tinycode's tokenizer, saved with save_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from courseutils.model.loader import load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer("tinycode")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    out = tmp_path / "tiny-llama"
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
