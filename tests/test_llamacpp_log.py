"""The tap on llama.cpp's log: it keeps the text, forwards it unchanged, and errors quote it."""
from __future__ import annotations

import ctypes
import logging

import gguf
import numpy as np
import pytest

from courseutils.core.errors import CourseError, LlamaCppError, QuantTypeError
from courseutils.llamacpp import LlamaCpp, quantize
from courseutils.llamacpp import log as cpplog


def _write_gguf(path, arch: str, keys: dict | None = None):
    """A valid GGUF container llama.cpp will refuse: an unknown architecture or missing keys."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in (keys or {}).items():
        w.add_uint32(key, value)
    w.add_tensor("blk.0.ffn_up.weight", np.ones((4, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _quantize_raw(src, out):
    """llama_model_quantize called directly: no courseutils wrapper, no stderr silencing."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)
    return llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))


def test_tap_keeps_the_text_and_forwards_it(tmp_path, capsys):
    """The capture sees llama.cpp's message, and llama-cpp-python's callback still prints it
    (its logger at DEBUG prints, above CRITICAL it does not: verbosity stays its decision).
    DEBUG, because llama-cpp-python 0.3.36 maps levels from an older ggml enum: llama.cpp's
    ERROR (4 in ggml.h today) reaches its logger as DEBUG."""
    src = _write_gguf(tmp_path / "alien.gguf", "no-such-arch")
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    try:
        for logger_level, printed in ((logging.DEBUG, True), (logging.CRITICAL + 1, False)):
            logger.setLevel(logger_level)
            capsys.readouterr()
            with cpplog.captured_log() as log:
                assert _quantize_raw(src, tmp_path / "out.gguf") != 0
            err = capsys.readouterr().err
            assert "unknown model architecture: 'no-such-arch'" in log.text
            assert ("unknown model architecture: 'no-such-arch'" in err) is printed, err
            assert "unknown model architecture" in cpplog.recent_log(5)
    finally:
        logger.setLevel(level)


def test_install_is_idempotent(tmp_path):
    import llama_cpp

    cpplog.install_log_tap()
    tap = cpplog._TAP.callback
    cpplog.install_log_tap()
    assert cpplog._TAP.callback is tap
    current = llama_cpp.llama_log_callback()
    llama_cpp.llama_log_get(ctypes.byref(current), ctypes.byref(ctypes.c_void_p()))
    assert ctypes.cast(current, ctypes.c_void_p).value == ctypes.cast(tap, ctypes.c_void_p).value
    src = _write_gguf(tmp_path / "alien.gguf", "no-such-arch")
    with cpplog.captured_log() as outer:
        with cpplog.captured_log() as inner:
            _quantize_raw(src, tmp_path / "out.gguf")
    # recorded once per capture, not once per install
    assert inner.text.count("failed to quantize") == 1 and outer.text == inner.text


def test_recent_log_is_bounded():
    cpplog.install_log_tap()
    for i in range(2000):
        cpplog._TAP.record(f"line {i:05d} " + "x" * 80 + "\n")
    text = cpplog.recent_log()
    assert len(text) <= cpplog.RECENT_LOG_CHARS
    assert text.endswith("line 01999 " + "x" * 80 + "\n")
    assert cpplog.recent_log(2).splitlines()[0].startswith("line 01998")


def test_log_tail_skips_dots_and_blank_lines():
    assert cpplog.log_tail("a\n\n.......\nb\nc\n", 2) == "    b\n    c"
    assert "nothing" in cpplog.log_tail("")


def test_failed_quantize_quotes_llama_cpp(tmp_path):
    src = _write_gguf(tmp_path / "alien.gguf", "no-such-arch")
    with pytest.raises(QuantTypeError, match="could not quantize") as err:
        quantize(src, tmp_path / "out.gguf", "Q8_0")
    assert "llama_model_quantize: failed to quantize: unknown model architecture: 'no-such-arch'" in str(err.value)


@pytest.mark.parametrize("arch, keys, said", [
    ("no-such-arch", {}, "error loading model: unknown model architecture: 'no-such-arch'"),
    ("llama", {"llama.block_count": 1}, "key not found in model: llama.context_length"),
])
def test_failed_load_quotes_llama_cpp(tmp_path, arch, keys, said):
    src = _write_gguf(tmp_path / "bad.gguf", arch, keys)
    with pytest.raises(LlamaCppError, match="could not load") as err:
        LlamaCpp(src, n_ctx=64)
    assert said in str(err.value), str(err.value)


def test_failed_logits_quote_llama_cpp(f16_gguf):
    with LlamaCpp(f16_gguf, n_ctx=64) as llm:
        with pytest.raises(LlamaCppError, match="could not evaluate") as err:
            llm.logits([llm.bos_id, llm.n_vocab + 5])
        assert f"invalid token[1] = {llm.n_vocab + 5}" in str(err.value)
        assert np.isfinite(llm.logits([llm.bos_id, 5])).all()  # the model still works afterwards


def test_vocab_only_load_tokenizes_like_a_full_load(f16_gguf):
    text = "def f(x):\n    return x ** 2  # café, 12345\n"
    with LlamaCpp(f16_gguf, n_ctx=64) as full, LlamaCpp(f16_gguf, n_ctx=64, vocab_only=True) as vocab:
        assert vocab.tokenize(text) == full.tokenize(text)
        assert vocab.buffer_sizes()["model"] == {} and full.buffer_sizes()["model"]
        with pytest.raises(CourseError, match="vocab_only=True"):
            vocab.logits([1, 2])
