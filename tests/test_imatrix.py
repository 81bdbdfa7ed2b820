"""The importance matrix from torch against llama.cpp's own tools (fixtures from `make oracles`).

tests/fixtures/make_imatrix_fixture.py ran llama-imatrix on tinycode and llama-quantize with our
file; see tests/fixtures/llama_imatrix.json for the tool version and options.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from courseutils.calib.imatrix import compute_imatrix, read_imatrix, write_imatrix
from courseutils.core.errors import CourseError, GGUFError
from courseutils.llamacpp import get_gguf, quantize

FIX = Path(__file__).parent / "fixtures"
META = json.loads((FIX / "llama_imatrix.json").read_text())
TOLERANCE = 1e-3  # |ours - llama-imatrix| <= 1e-3 x the tensor's largest value (measured: 2.3e-4)


@pytest.fixture(scope="module")
def ours(tinycode):
    text = (FIX / META["text_file"]).read_text(encoding="utf-8")
    return compute_imatrix(tinycode, text=text, n_ctx=META["n_ctx"], n_chunks=META["n_chunks"])


def test_torch_imatrix_matches_llama_imatrix(ours):
    theirs = read_imatrix(FIX / "llama_imatrix_tinycode.gguf")
    assert theirs.chunk_size == META["n_ctx"] and theirs.chunk_count == META["n_chunks"]
    assert set(ours) == set(theirs.values)
    for name, values in ours.items():
        ref = theirs.values[name]
        assert values.shape == ref.shape, name
        assert np.abs(values - ref).max() <= TOLERANCE * ref.max(), name
        assert theirs.counts[name] == META["n_ctx"] * META["n_chunks"], name


def test_our_file_round_trips_and_is_what_the_fixture_holds(ours, tmp_path):
    path = write_imatrix(tmp_path / "im.gguf", ours, n_tokens=2048, chunk_size=256, datasets=("calibration",))
    back = read_imatrix(path)
    assert back.chunk_count == 8 and back.chunk_size == 256 and back.datasets == ["calibration"]
    for name, values in ours.items():
        assert np.allclose(back.values[name], values, rtol=1e-6, atol=0), name
    fixture = read_imatrix(FIX / "courseutils_imatrix_tinycode.gguf")
    for name, values in ours.items():
        assert np.allclose(fixture.values[name], values, rtol=1e-5, atol=1e-12), name


@pytest.mark.slow
def test_in_memory_imatrix_gives_llama_quantizes_tensors_bit_for_bit(tmp_path):
    """llama-quantize --imatrix <our file> made the fixture's tensors; in memory we must make the same."""
    from courseutils.scoring.scorecard import sha256_file

    f16 = get_gguf("tinycode", "F16")
    assert sha256_file(f16) == META["f16_sha256"], "tinycode's F16 export changed: regenerate with `make oracles`"
    imatrix = read_imatrix(FIX / "courseutils_imatrix_tinycode.gguf").values
    out = quantize(f16, tmp_path / "iq2.gguf", META["qtype"], imatrix=imatrix)
    hashes = {t.name: hashlib.sha256(bytes(t.data)).hexdigest()[:16] for t in gguf.GGUFReader(str(out)).tensors}
    assert hashes == META["quantized_tensor_sha256"]


@pytest.mark.slow
def test_the_imatrix_changes_the_quantized_weights(f16_gguf, tmp_path):
    imatrix = read_imatrix(FIX / "courseutils_imatrix_tinycode.gguf").values
    plain = quantize(f16_gguf, tmp_path / "plain.gguf", "Q3_K_S")
    weighted = quantize(f16_gguf, tmp_path / "imat.gguf", "Q3_K_S", imatrix=imatrix)
    a = {t.name: bytes(t.data) for t in gguf.GGUFReader(str(plain)).tensors}
    b = {t.name: bytes(t.data) for t in gguf.GGUFReader(str(weighted)).tensors}
    changed = [n for n in a if n.startswith("blk.") and a[n] != b[n]]
    assert len(changed) >= 40, f"only {len(changed)} block tensors changed"


def test_bad_imatrix_files_and_values_are_clear_errors(tmp_path, f16_gguf):
    with pytest.raises(GGUFError, match="no such file"):
        read_imatrix(tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(GGUFError, match="not a readable GGUF"):
        read_imatrix(tmp_path / "junk.gguf")
    with pytest.raises(GGUFError, match="not an importance matrix"):
        read_imatrix(f16_gguf)
    with pytest.raises(CourseError, match="must be a 1-D array of finite"):
        write_imatrix(tmp_path / "x.gguf", {"blk.0.attn_q.weight": np.array([1.0, np.nan])}, 10, 5)
    with pytest.raises(CourseError, match="n_tokens=0"):
        write_imatrix(tmp_path / "x.gguf", {"blk.0.attn_q.weight": np.ones(4)}, 0, 5)
    assert not (tmp_path / "x.gguf").exists()
