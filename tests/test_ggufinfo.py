"""courseutils.ggml.ggufinfo: reading GGUF files written by gguf-py and llama.cpp, and size estimates."""
from __future__ import annotations


import gguf
import numpy as np
import pytest

from courseutils.ggml import ggufinfo as gi
from courseutils.llamacpp.typemap import llama_type_map
from courseutils.ggml.blocks import bits_per_weight
from courseutils.core.errors import CourseError, GGUFError


@pytest.fixture()
def small_gguf(tmp_path):
    """A GGUF written by gguf-py with known tensors: F32, F16 and a Q8_0 one."""
    path = tmp_path / "small.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_string("course.note", "hello")
    w.add_array("course.list", [1, 2, 3, 4, 5])
    rng = np.random.default_rng(0)
    w.add_tensor("a.weight", rng.standard_normal((4, 64)).astype(np.float32))
    w.add_tensor("b.weight", rng.standard_normal((2, 32)).astype(np.float16))
    q = gguf.quants.quantize(rng.standard_normal((3, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("c.weight", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_read_small_file(small_gguf):
    info = gi.read_gguf(small_gguf)
    assert info.version == 3 and info.alignment == 32
    assert info.metadata["course.note"] == "hello"
    assert info.metadata["course.list"] == [1, 2, 3, 4, 5]
    assert ("course.list", "[1, 2, 3, ...] (5 items)") in info.metadata_table()
    t = {x.name: x for x in info.tensors}
    assert (t["a.weight"].qtype, t["a.weight"].shape, t["a.weight"].n_bytes) == ("F32", (4, 64), 4 * 64 * 4)
    assert (t["b.weight"].qtype, t["b.weight"].shape, t["b.weight"].bpw) == ("F16", (2, 32), 16.0)
    assert t["c.weight"].shape == (3, 64) and t["c.weight"].n_bytes == 3 * 2 * 34
    assert t["c.weight"].bpw == bits_per_weight("Q8_0") == 8.5
    assert info.bpw == 8 * (1024 + 128 + 204) / (256 + 64 + 192)
    assert info.file_bytes == small_gguf.stat().st_size > info.tensor_bytes
    assert info.data_offset % info.alignment == 0
    raw, qtype, shape = gi.tensor_bytes(small_gguf, "b.weight")
    assert qtype == "F16" and shape == (2, 32) and raw.shape == (2, 64)
    summary = {r["qtype"]: r for r in info.type_summary()}
    assert summary["Q8_0"]["elements"] == 192 and summary["F32"]["share_of_weights"] == 256 / 512


def test_errors_for_missing_empty_foreign_and_truncated_files(small_gguf, tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        gi.read_gguf(tmp_path / "nope.gguf")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFError, match="empty"):
        gi.read_gguf(empty)
    foreign = tmp_path / "foreign.gguf"
    foreign.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        gi.read_gguf(foreign)
    data = small_gguf.read_bytes()
    for cut in (gi.read_gguf(small_gguf).data_offset + 100, 40):  # tensor data cut short; header cut short
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match="truncated"):
            gi.read_gguf(bad)
    with pytest.raises(CourseError, match="not tensors of"):
        gi.read_tensors(small_gguf, ["zzz"])


@pytest.fixture(scope="module")
def tinycode_mixes():
    from courseutils.llamacpp import get_gguf

    return {q: get_gguf("tinycode", q) for q in ("Q4_K_S", "Q4_K_M")}


def test_llamacpp_file_bpw_is_the_weighted_layout_bpw(tinycode_mixes):
    info = gi.read_gguf(tinycode_mixes["Q4_K_M"])
    assert info.metadata["general.architecture"] == "llama"
    for t in info.tensors:
        assert t.bpw == bits_per_weight(t.qtype), t.name
    expected = sum(t.n_elements * bits_per_weight(t.qtype) for t in info.tensors) / info.n_elements
    assert info.bpw == pytest.approx(expected, rel=1e-12)
    assert {t.qtype for t in info.tensors} >= {"Q4_K", "Q6_K"}


@pytest.mark.slow
def test_compare_types_of_s_and_m_mixes(tinycode_mixes):
    rows = gi.compare_types(tinycode_mixes)
    assert len(rows) == len(gi.read_gguf(tinycode_mixes["Q4_K_M"]).tensors)
    changed = gi.compare_types(tinycode_mixes, changed_only=True)
    assert changed and all(r["Q4_K_S"] != r["Q4_K_M"] for r in changed)
    assert len(changed) == sum(r["Q4_K_S"] != r["Q4_K_M"] for r in rows)
    with pytest.raises(CourseError, match="at least two"):
        gi.compare_types({"a": tinycode_mixes["Q4_K_M"]})


def test_role_of():
    assert gi.role_of("blk.12.ffn_down.weight") == ("ffn_down", 12)
    assert gi.role_of("output.weight") == ("output", None)


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule (src/llama-quant.cpp) for the layers that get more bits in *_M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def test_type_map_from_skeleton_follows_llamacpp_rule():
    cfg = gi.LLAMA_SHAPES["Llama-2-7B"]
    types = llama_type_map(cfg, "Q4_K_M")
    for name, qtype in types.items():
        role, layer = gi.role_of(name)
        if role.endswith("norm"):
            expected = "F32"
        elif role == "output":
            expected = "Q6_K"
        elif role in ("attn_v", "ffn_down"):
            expected = "Q6_K" if _use_more_bits(layer, cfg.n_layer) else "Q4_K"
        else:
            expected = "Q4_K"
        assert qtype == expected, name


def test_skeleton_reproduces_tinycode_file_types(tinycode_mixes):
    from courseutils.model.loader import model_card

    c = model_card("tinycode")["config"]
    cfg = gi.LlamaShape("tinycode", c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"],
                        c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"],
                        tied=c["tie_word_embeddings"])
    real = {t.name: t.qtype for t in gi.read_gguf(tinycode_mixes["Q4_K_M"]).tensors}
    assert llama_type_map(cfg, "Q4_K_M") == real
    est = gi.estimate_bpw(cfg, real)
    info = gi.read_gguf(tinycode_mixes["Q4_K_M"])
    assert est["params"] == info.n_elements and est["bytes"] == info.tensor_bytes


def test_estimate_bpw_closed_form():
    cfg = gi.LLAMA_SHAPES["Llama-3-8B"]
    shapes = gi.llama_tensor_shapes(cfg)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 8_030_261_248  # Llama-3-8B's parameter count
    types = {n: ("F32" if len(s) == 1 else "Q8_0") for n, s in shapes.items()}
    est = gi.estimate_bpw(cfg, types)
    n_norm = sum(int(np.prod(s)) for s in shapes.values() if len(s) == 1)
    assert est["bytes"] == (est["params"] - n_norm) * 34 // 32 + 4 * n_norm
    with pytest.raises(CourseError, match="no entry"):
        gi.estimate_bpw(cfg, {"output.weight": "Q8_0"})
