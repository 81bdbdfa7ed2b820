"""Export a Llama-architecture Hugging Face model to GGUF with gguf-py.

What llama.cpp needs, and why each step is there:

- **Metadata** under the ``llama.`` prefix (sizes, heads, RoPE base, RMSNorm epsilon).
- **Tensor names** in llama.cpp's scheme (``blk.N.attn_q.weight`` …), shapes as PyTorch
  stores them (gguf-py reverses them into ggml's order).
- **The Q/K head permutation.** Hugging Face's Llama rotates the two *halves* of each
  head (``rotate_half``); llama.cpp's ``LLAMA`` RoPE rotates *adjacent pairs*. Reordering
  the rows of ``W_q`` and ``W_k`` inside each head, (2, d/2) → (d/2, 2), makes the two
  conventions compute the same attention scores (``convert_hf_to_gguf.py``'s ``permute``).
- **The tokenizer** as ``gpt2`` BPE with its merges, explicit BOS/EOS ids and the right
  pre-tokenizer name, or llama.cpp splits text differently from the HF tokenizer. The name
  is read from the tokenizer itself, as llama.cpp's converter does (a hash of the token ids
  of a probe text, :mod:`courseutils.ggml.pretokenizer`), never from the model's name.
  :func:`courseutils.llamacpp.get_gguf` then checks llama.cpp's tokenization of a sample
  against the HF tokenizer's (:mod:`courseutils.llamacpp.parity`).
- 1-D tensors (the RMSNorm gains) stay F32, as llama.cpp expects.

The file is written to a temporary name and renamed at the end: an interrupted export
never leaves a truncated GGUF behind.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from ..core.config import cache_dir
from ..core.errors import CourseError, ModelError
from ..core.io import atomic_path, check_output_path
from ..model.loader import local_model_dir
from .pretokenizer import detect_pre_tokenizer

__all__ = ["export_gguf", "permute_qk", "gguf_tensor_name", "gguf_pre_tokenizer", "EXPORT_DTYPES"]

EXPORT_DTYPES = ("F16", "F32")

# HF parameter suffix -> llama.cpp tensor name (per block)
_BLOCK_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight"}


def gguf_tensor_name(hf_name: str) -> str:
    """llama.cpp's name for a Hugging Face Llama parameter (``model.layers.3.mlp.up_proj.weight`` → ``blk.3.ffn_up.weight``)."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    parts = hf_name.split(".")
    if len(parts) > 3 and parts[:2] == ["model", "layers"]:
        suffix = ".".join(parts[3:])
        if suffix in _BLOCK_NAMES:
            return f"blk.{parts[2]}.{_BLOCK_NAMES[suffix]}"
    raise ModelError(f"parameter {hf_name!r} has no llama.cpp counterpart; only plain Llama layers are supported")


def permute_qk(W: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of ``W_q`` / ``W_k`` from HF's half-split RoPE to llama.cpp's pairwise RoPE.

    Args:
        W: ``(n_head * head_dim, d_model)`` projection weight.
        n_head: heads in this projection (``num_key_value_heads`` for ``W_k``).
    """
    rows = W.shape[0]
    if rows % (2 * n_head):
        raise CourseError(f"W has {rows} rows, not divisible by 2 * n_head = {2 * n_head}")
    return W.reshape(n_head, 2, rows // n_head // 2, *W.shape[1:]).swapaxes(1, 2).reshape(W.shape)


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ModelError(f"rope_type={kind!r} is not supported by this exporter; allowed: 'default' "
                         "(use llama.cpp's convert_hf_to_gguf.py for models with RoPE scaling)")
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def _tokenizer_fields(model_dir: Path, vocab_size: int, pre: str) -> dict:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{str(model_dir)!r} has no tokenizer.json; the exporter needs a fast (tokenizers) BPE tokenizer")
    tok = json.loads(path.read_text(encoding="utf-8"))
    model = tok.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ModelError(f"tokenizer of {str(model_dir)!r} is {model.get('type')!r}; only byte-level BPE (GPT-2 style) "
                         "tokenizers are supported")
    id_to_tok = {i: t for t, i in model["vocab"].items()}
    special = {a["id"]: a["content"] for a in tok.get("added_tokens", [])}
    id_to_tok.update(special)
    tokens, types = [], []
    for i in range(vocab_size):
        if i in id_to_tok:
            tokens.append(id_to_tok[i])
            types.append(3 if i in special else 1)  # 3 = CONTROL, 1 = NORMAL
        else:
            tokens.append(f"[PAD{i}]")
            types.append(5)  # UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    cfg_path = model_dir / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    by_text = {v: k for k, v in special.items()}

    def special_id(key):
        value = tcfg.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        return by_text.get(value)

    return {"tokens": tokens, "types": types, "merges": merges, "pre": pre,
            "bos": special_id("bos_token"), "eos": special_id("eos_token"), "pad": special_id("pad_token")}


def gguf_pre_tokenizer(path: str | os.PathLike) -> str | None:
    """The ``tokenizer.ggml.pre`` value of a GGUF file (None when absent)."""
    import gguf

    field = gguf.GGUFReader(str(path)).get_field("tokenizer.ggml.pre")
    return None if field is None else field.contents()


def export_gguf(model: str | os.PathLike = "tinycode", out: str | os.PathLike | None = None, dtype: str = "F16",
                pre_tokenizer: str | None = None, overwrite: bool = False) -> Path:
    """Write a GGUF file of a Llama-architecture HF model; return its path.

    Args:
        model: ``"tinycode"``, a local HF directory, or a hub id (needs the files cached).
        out: output path; default ``COURSE_CACHE/<name>-<dtype>.gguf`` (reused when present).
        dtype: ``"F16"`` or ``"F32"`` for the 2-D weights (norms are always F32).
        pre_tokenizer: llama.cpp pre-tokenizer name (``tokenizer.ggml.pre``, e.g. ``"gpt-2"``,
            ``"llama-bpe"``, ``"smollm"``, ``"qwen2"``). None: detected from the tokenizer's
            probe hash (:func:`courseutils.ggml.pretokenizer.detect_pre_tokenizer`). An existing
            ``out`` written with another pre-tokenizer is rewritten.
        overwrite: rewrite ``out`` even when it exists.

    Raises:
        UnknownPreTokenizerError: ``pre_tokenizer`` is None and the probe hash is unknown.

    This writes the file only. :func:`courseutils.llamacpp.get_gguf`, the path lessons and
    the CLI use, also checks that llama.cpp tokenizes like the HF tokenizer.
    """
    if dtype not in EXPORT_DTYPES:
        raise CourseError(f"dtype={dtype!r} is not one of {EXPORT_DTYPES}")
    if pre_tokenizer is not None and (not isinstance(pre_tokenizer, str) or not pre_tokenizer.strip()):
        raise CourseError(f"pre_tokenizer={pre_tokenizer!r} must be a llama.cpp pre-tokenizer name such as 'gpt-2' "
                          "or 'llama-bpe', or None to detect it from the tokenizer")
    label, where = local_model_dir(model)
    if out is None:
        out = cache_dir() / f"{label}-{dtype}.gguf"
    final = check_output_path(out)
    if final.exists() and not overwrite and pre_tokenizer in (None, gguf_pre_tokenizer(final)):
        return final
    import gguf  # heavy imports only when there is work to do
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(where)
    if config.model_type != "llama":
        raise ModelError(f"model={str(model)!r} has model_type={config.model_type!r}; only 'llama' can be exported")
    hf = LlamaForCausalLM.from_pretrained(where, dtype=torch.float32)
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    tied = bool(getattr(config, "tie_word_embeddings", False))
    pre = pre_tokenizer or detect_pre_tokenizer(AutoTokenizer.from_pretrained(where), str(model))
    tok = _tokenizer_fields(Path(where), config.vocab_size, pre)
    np_dtype = np.float16 if dtype == "F16" else np.float32

    with atomic_path(final) as tmp, contextlib.closing(gguf.GGUFWriter(str(tmp), "llama")) as writer:
        writer.add_name(label)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_rope_dimension_count(head_dim)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "F16" else gguf.LlamaFileType.ALL_F32)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(tok["pre"])
        writer.add_token_list(tok["tokens"])
        writer.add_token_types(tok["types"])
        writer.add_token_merges(tok["merges"])
        for key, adder in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                           ("pad", writer.add_pad_token_id)):
            if tok[key] is not None:
                adder(tok[key])
        writer.add_add_bos_token(tok["bos"] is not None)
        writer.add_add_eos_token(False)
        for name, W in state.items():
            if name == "lm_head.weight" and tied:
                continue  # llama.cpp reuses token_embd when output.weight is absent
            if name.endswith("rotary_emb.inv_freq"):
                continue
            if name.endswith("q_proj.weight"):
                W = permute_qk(W, n_head)
            elif name.endswith("k_proj.weight"):
                W = permute_qk(W, n_kv)
            W = W.astype(np.float32 if W.ndim == 1 else np_dtype)
            writer.add_tensor(gguf_tensor_name(name), np.ascontiguousarray(W))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    return final
