"""Does llama.cpp tokenize an exported GGUF exactly as the model's Hugging Face tokenizer does?

The GGUF carries the vocabulary, the merges and a pre-tokenizer *name*
(``tokenizer.ggml.pre``); llama.cpp re-implements the splitting from that name. If the name
is wrong, llama.cpp feeds the model token sequences it never saw in training: a silently
different model, with a worse perplexity and no error. So after an export,
:func:`check_tokenizer_parity` tokenizes :data:`PARITY_TEXT` (Python code, prose, digits,
unicode, and llama.cpp's own pre-tokenizer probe text) with both and raises
:class:`~courseutils.core.errors.TokenizerMismatchError` at the first differing token.
This module compares and explains (:func:`check_same_tokens`);
:func:`courseutils.llamacpp.bridge.check_tokenizer_parity` loads both tokenizers.

Special tokens are left out on both sides (``add_bos=False``, ``add_special_tokens=False``):
this checks the splitting of text, which is what the pre-tokenizer decides.

It is cheap: llama.cpp loads the vocabulary only (``LlamaCpp(..., vocab_only=True)``), and
the result is remembered per file version (path, size, mtime) for the process.
:func:`courseutils.llamacpp.get_gguf`, the export path of the lessons and the CLI, runs it.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import TokenizerMismatchError
from ..ggml.pretokenizer import PROBE_TEXT

__all__ = ["PARITY_TEXT", "first_difference", "check_same_tokens"]

#: The sample both tokenizers must split identically: the cases pre-tokenizers disagree on
#: (digit runs, contractions in any case, punctuation glued to letters or newlines, runs of
#: spaces, tabs and newlines, accents, CJK, emoji), then llama.cpp's probe text.
PARITY_TEXT = (
    "import os, re\n"
    "from typing import Iterable\n\n\n"
    "class Counter:\n"
    "    \"\"\"Count words; 12345 calls so far, 3.14159 per second.\"\"\"\n\n"
    "    def __init__(self, path: str = '~/data_2024/words.txt') -> None:\n"
    "        self._n, self.errors = 0, []  # (n, errors)\n"
    "        self.path=os.path.expanduser(path)\n\n"
    "    def add(self, words: Iterable[str]) -> int:\n"
    "\tfor w in words:\n"
    "\t\tif re.match(r'^[a-z_]+\\d{2,}$', w):   self._n += 1\n"
    "        return self._n ** 2 // 7 if self._n>=100_000 else -0x1F\n\n"
    "I'll say it: we're SURE it's fine, aren't we? WE'RE not. They'd've said 'RE-run it' "
    "on 2024-03-15 at 09:45, after 1000000 steps (99.9% of 1,234,567).\n"
    "Café naïve Größe façade — déjà vu… 東京で会いましょう 🦙🚀 Привет, мир! مرحبا\n"
    "    indented  double  spaces\t\ttabs\n\n\n   \n"
) + PROBE_TEXT


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first index where two token sequences differ (a length difference counts), or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _window(tokenizer, ids: list[int], i: int, before: int = 4, after: int = 6) -> str:
    lo, hi = max(0, i - before), min(len(ids), i + after)
    pieces = tokenizer.convert_ids_to_tokens(ids[lo:hi])
    shown = ", ".join(f"{'>' if lo + k == i else ''}{t} {p!r}" for k, (t, p) in enumerate(zip(ids[lo:hi], pieces)))
    return f"[{lo}:{hi}] {shown}"


def _mismatch_message(path: Path, pre: str | None, model: str, tokenizer, text: str, cpp: list[int],
                      hf: list[int], i: int) -> str:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    at = offsets[i][0] if i < len(offsets) else len(text)
    return (f"path={str(path)!r} (tokenizer.ggml.pre={pre!r}): llama.cpp tokenizes the sample text differently "
            f"from the Hugging Face tokenizer of model={model!r}. First difference at token {i} "
            f"({len(cpp)} tokens in llama.cpp, {len(hf)} in HF), at character {at} of the text: "
            f"{text[max(0, at - 20):at]!r} | {text[at:at + 30]!r}\n"
            f"  llama.cpp {_window(tokenizer, cpp, i)}\n"
            f"  HF        {_window(tokenizer, hf, i)}\n"
            "A GGUF that tokenizes differently is a different model. Export again with the pre_tokenizer= whose "
            "regex matches the 'pre_tokenizer' in the model's tokenizer.json (llama.cpp's names: 'gpt-2', "
            "'llama-bpe', 'smollm', 'qwen2', ... in src/llama-vocab.cpp).")


def check_same_tokens(cpp: list[int], hf: list[int], tokenizer, text: str, path: str | os.PathLike,
                      pre: str | None, model: str) -> int:
    """Raise unless the two tokenizations of ``text`` are identical; return their length.

    Args:
        cpp: llama.cpp's token ids of ``text`` (no BOS).
        hf: the HF tokenizer's ids of ``text`` (``add_special_tokens=False``).
        tokenizer: the HF tokenizer (names the tokens and finds the text in the message).
        path, pre, model: the GGUF, its ``tokenizer.ggml.pre``, the model reference (for the message).

    Raises:
        TokenizerMismatchError: at the first differing token; the message shows both
            sequences around it, the text there, and what to do.
    """
    i = first_difference(cpp, hf)
    if i is not None:
        raise TokenizerMismatchError(_mismatch_message(Path(path), pre, str(model), tokenizer, text, cpp, hf, i))
    return len(hf)
