"""tinycode's tokenizer: byte-level BPE with GPT-2 pre-tokenization.

Byte-level BPE never meets an unknown character, and the GPT-2 pre-tokenizer regex is
the one llama.cpp implements as ``tokenizer.ggml.pre = "gpt-2"``, so llama.cpp splits
text exactly as the Hugging Face tokenizer does (tested in ``tests/test_gguf_export.py``).
BOS is added in front of every encoded text, as llama.cpp does with ``add_bos_token``.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SPECIAL_TOKENS", "BOS", "EOS", "PAD", "train_tokenizer"]

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, EOS, PAD]  # ids 0, 1, 2


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096):
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: training documents (one string per source file).
        vocab_size: total vocabulary including the 256 byte symbols and 3 special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False)
