"""The pre-tokenizer is read from the tokenizer (llama.cpp's probe hash), never from the model's name."""
from __future__ import annotations

from hashlib import sha256

import pytest

from courseutils.core.errors import UnknownPreTokenizerError
from courseutils.ggml.pretokenizer import KNOWN_PRE_TOKENIZERS, PROBE_TEXT, detect_pre_tokenizer, probe_hash

TINYCODE_HASH = "b6c45b38916ba88ae490fe20987b2027e0b06890d2b76e7e3a64b5317c94fed8"


class _FixedIds:
    """A stand-in tokenizer: encode returns fixed ids whatever the text."""

    def __init__(self, ids):
        self.ids = ids

    def encode(self, text):
        assert text == PROBE_TEXT
        return self.ids


def test_probe_text_is_llama_cpps():
    """sha256 of the UTF-8 probe text, computed from chktxt in llama.cpp's conversion/base.py
    (llama-cpp-python 0.3.36's vendored llama.cpp): one changed character breaks every hash."""
    assert len(PROBE_TEXT) == 350
    assert sha256(PROBE_TEXT.encode()).hexdigest() == \
        "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"


def test_hash_is_sha256_of_str_of_the_id_list():
    """llama.cpp hashes str(list): '[1, 22, 333]', comma and space, no numpy types."""
    assert probe_hash(_FixedIds([1, 22, 333])) == sha256(b"[1, 22, 333]").hexdigest()
    import numpy as np
    assert probe_hash(_FixedIds(np.array([1, 22, 333]))) == sha256(b"[1, 22, 333]").hexdigest()


def test_tinycode_hash_maps_to_gpt2():
    from courseutils.model.loader import load_tokenizer

    tok = load_tokenizer("tinycode")
    assert probe_hash(tok) == TINYCODE_HASH
    assert detect_pre_tokenizer(tok) == "gpt-2"


def test_table_holds_the_llama_family():
    names = {k.pre for k in KNOWN_PRE_TOKENIZERS.values()}
    assert {"gpt-2", "llama-bpe", "smollm", "qwen2"} <= names
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in KNOWN_PRE_TOKENIZERS)
    # llama.cpp's row for Meta-Llama-3-8B
    assert KNOWN_PRE_TOKENIZERS["0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"].pre == "llama-bpe"


def test_unknown_hash_is_a_clear_error():
    ids = [0, 5, 7]
    digest = sha256(str(ids).encode()).hexdigest()
    with pytest.raises(UnknownPreTokenizerError, match="pre_tokenizer=") as err:
        detect_pre_tokenizer(_FixedIds(ids), "some/model")
    assert digest in str(err.value) and "'some/model'" in str(err.value)
