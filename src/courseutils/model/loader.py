"""Loading models: the shipped tinycode, a local Hugging Face directory, or a hub id.

One function, :func:`load_model`, serves all three so every lesson runs the same code on
tinycode (CPU, offline) and on a real hub model (Colab GPU, opt-in).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import default_model, get_device, tinycode_dir
from ..core.errors import ModelError

__all__ = ["TinycodeConfig", "load_model", "load_tokenizer", "resolve_model", "local_model_dir", "model_card", "llama_config"]

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class TinycodeConfig:
    """Shape of tinycode. Sizes are multiples of 256 because llama.cpp's K-quant
    super-blocks hold 256 weights: a row of another length silently falls back to a
    different type."""
    vocab_size: int = 4096
    hidden_size: int = 256          # d_model
    intermediate_size: int = 768    # SwiGLU width
    num_hidden_layers: int = 6
    num_attention_heads: int = 4    # head_dim = 64
    num_key_value_heads: int = 2    # grouped-query attention, as in SmolLM2 / Llama 3
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True


def llama_config(cfg: TinycodeConfig = TinycodeConfig(), bos_token_id: int = 0, eos_token_id: int = 1):
    """A ``transformers.LlamaConfig`` built from a :class:`TinycodeConfig`."""
    from transformers import LlamaConfig

    return LlamaConfig(**asdict(cfg), bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=2,
                       hidden_act="silu", attention_bias=False, mlp_bias=False)


def resolve_model(name: str | os.PathLike | None = None) -> tuple[str, str]:
    """Classify a model reference as ``("tinycode"|"local"|"hub", location)``.

    ``None`` means ``COURSE_MODEL`` (default ``"tinycode"``). A path that exists is
    local; ``owner/name`` that is not a path is a hub id; anything else is an error.
    """
    name = str(name if name is not None else default_model())
    if name == "tinycode":
        path = tinycode_dir()
        if not (path / "config.json").exists():
            raise ModelError(f"model='tinycode': the shipped weights are missing from {path}; "
                             "reinstall the package or run `make model`")
        return "tinycode", str(path)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model={name!r} is not a Hugging Face model directory (no config.json); "
                             "expected 'tinycode', a local directory or a hub id like 'HuggingFaceTB/SmolLM2-135M'")
        return "local", str(path)
    if HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return "hub", name
    raise ModelError(f"model={name!r}: no such directory, and not a hub id of the form 'owner/name'; "
                     "expected 'tinycode', a local directory or a hub id")


def local_model_dir(name: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(label, local directory)`` of a model reference; a hub id is fetched (or found in
    the hub cache) with ``snapshot_download``. The label names cached artifacts."""
    kind, where = resolve_model(name)
    if kind == "hub":
        from huggingface_hub import snapshot_download
        where = snapshot_download(where)
    return ("tinycode" if kind == "tinycode" else Path(where).name), where


def _check_llama(config, name: str) -> None:
    archs = getattr(config, "architectures", None) or []
    if config.model_type != "llama" and "LlamaForCausalLM" not in archs:
        raise ModelError(f"model={name!r} has model_type={config.model_type!r} (architectures={archs}); "
                         "the course handles Llama-architecture models (model_type 'llama')")


def load_tokenizer(name: str | os.PathLike | None = None):
    """The tokenizer of a model reference (see :func:`resolve_model`)."""
    from transformers import AutoTokenizer

    kind, where = resolve_model(name)
    return AutoTokenizer.from_pretrained(where)


def load_model(name: str | os.PathLike | None = None, device: str | None = None, dtype=None):
    """Load a Llama-architecture causal LM and its tokenizer, in eval mode.

    Args:
        name: ``"tinycode"``, a local HF directory, or a hub id (downloaded by
            ``transformers`` into its cache; offline this needs a cached copy).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default ``COURSE_DEVICE``).
        dtype: torch dtype for the weights; default float32 (lessons compute gradients).

    Returns:
        ``(model, tokenizer)``.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    kind, where = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(where)
    except OSError as exc:
        raise ModelError(f"model={str(name)!r}: cannot read its config ({exc})") from exc
    _check_llama(config, str(name))
    model = LlamaForCausalLM.from_pretrained(where, dtype=dtype or torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(where)
    model.to(get_device(device)).eval()
    return model, tokenizer


def model_card(name: str | os.PathLike | None = None) -> dict:
    """The model card (JSON) of tinycode or of a local directory that has one; ``{}`` otherwise."""
    kind, where = resolve_model(name)
    card = Path(where) / "model_card.json"
    return json.loads(card.read_text()) if kind != "hub" and card.exists() else {}
