import gguf
import numpy as np
import pytest

from courseutils.core.errors import CourseError, GGUFError, QuantTypeError
from courseutils.scoring.evaluate import perplexity_gguf
from courseutils.llamacpp import IMATRIX_REQUIRED, LlamaCpp, check_gguf, get_gguf, quant_types, quantize

LADDER = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"]


def test_type_listing():
    types = quant_types()
    assert {"F16", "Q8_0", "Q4_K_M", "Q2_K", "IQ2_XS"} <= set(types)
    assert not IMATRIX_REQUIRED & set(quant_types(include_imatrix_only=False))


def test_unknown_type_names_what_is_allowed(f16_gguf, tmp_path):
    with pytest.raises(QuantTypeError, match="Q4_K_M") as err:
        quantize(f16_gguf, tmp_path / "x.gguf", "Q4_K_Z")
    assert "Q4_K_Z" in str(err.value)


def test_imatrix_types_need_an_imatrix(f16_gguf, tmp_path):
    with pytest.raises(QuantTypeError, match="importance matrix"):
        quantize(f16_gguf, tmp_path / "x.gguf", "IQ2_XS")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_imatrix_quantization(tinycode, f16_gguf, tmp_path):
    from courseutils.calib.imatrix import compute_imatrix

    imatrix = compute_imatrix(tinycode, n_chunks=2)
    model, _ = tinycode
    assert imatrix["blk.0.ffn_down.weight"].shape == (model.config.intermediate_size,)
    assert imatrix["blk.0.attn_q.weight"].shape == (model.config.hidden_size,)
    # q, k and v read the same normalized input, so their E[x_j^2] must coincide
    assert np.array_equal(imatrix["blk.0.attn_q.weight"], imatrix["blk.0.attn_v.weight"])
    # oracle: E[x_j^2] of the first block's attention input, computed directly
    import torch
    from courseutils.model.corpus import corpus_text
    from courseutils.numerics.metrics import make_chunks
    from courseutils.model.train import encode
    _, tok = tinycode
    chunks = make_chunks(encode(tok, corpus_text("calibration")), 256, tok.bos_token_id, 2)
    with torch.no_grad():
        h = model.model.embed_tokens(torch.as_tensor(chunks))
        x = model.model.layers[0].input_layernorm(h).reshape(-1, h.shape[-1])
    assert np.allclose(imatrix["blk.0.attn_q.weight"], (x * x).mean(0).numpy(), rtol=1e-5)
    out = quantize(f16_gguf, tmp_path / "iq2.gguf", "IQ2_XS", imatrix=imatrix)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert types["blk.0.ffn_up.weight"] == "IQ2_XS"
    with LlamaCpp(out, n_ctx=64) as llm:
        assert np.isfinite(llm.logits(llm.tokenize("def main():\n"))).all()
    bad = dict(imatrix)
    bad["blk.0.ffn_up.weight"] = bad["blk.0.ffn_up.weight"] * np.nan
    with pytest.raises(QuantTypeError, match="finite"):
        quantize(f16_gguf, tmp_path / "bad.gguf", "IQ2_XS", imatrix=bad)


def test_broken_files_are_refused(f16_gguf, tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        check_gguf(tmp_path / "nope.gguf")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFError, match="empty"):
        LlamaCpp(empty)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(GGUFError, match="not a GGUF"):
        check_gguf(text)
    data = f16_gguf.read_bytes()
    for cut in (len(data) // 2, 1000, 30):
        truncated = tmp_path / f"cut{cut}.gguf"
        truncated.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match="truncated|corrupt"):
            quantize(truncated, tmp_path / "out.gguf", "Q8_0")
    assert not (tmp_path / "out.gguf").exists()


def test_failed_quantize_leaves_no_file(tmp_path):
    """llama.cpp rejects a GGUF whose architecture it does not know; nothing is left behind."""
    src = tmp_path / "alien.gguf"
    w = gguf.GGUFWriter(str(src), "no-such-arch")
    w.add_tensor("blk.0.ffn_up.weight", np.ones((4, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(QuantTypeError, match="could not quantize"):
        quantize(src, tmp_path / "out.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alien.gguf"]


def test_get_gguf_is_cached(f16_gguf):
    a = get_gguf("tinycode", "Q4_K_M")
    mtime = a.stat().st_mtime_ns
    assert get_gguf("tinycode", "q4_k_m") == a and a.stat().st_mtime_ns == mtime
    assert "tinycode-" in a.name and a.parent == f16_gguf.parent


@pytest.mark.slow
def test_quantization_visibly_matters(f16_gguf, val_text):
    """Issue 3's bar on the shipped tinycode: KLD rises and top-1 agreement falls strictly down the
    ladder, Q8_0 stays within 0.5 % of F16 perplexity and Q2_K is at least 5 % above it."""
    text = val_text[:400_000]
    results = {t: perplexity_gguf(get_gguf("tinycode", t), text, n_ctx=256, base=f16_gguf, n_chunks=24)
               for t in LADDER}
    kld = [results[t]["kld"] for t in LADDER]
    top1 = [results[t]["top1_agreement"] for t in LADDER]
    change = {t: results[t]["ppl"] / results[t]["base_ppl"] - 1 for t in LADDER}
    assert all(a < b for a, b in zip(kld, kld[1:])), dict(zip(LADDER, kld))
    assert all(a > b for a, b in zip(top1, top1[1:])), dict(zip(LADDER, top1))
    assert abs(change["Q8_0"]) < 0.005, change
    assert change["Q2_K"] >= 0.05, change


@pytest.mark.parametrize("qtype", sorted(IMATRIX_REQUIRED) + ["Q2_K", "Q3_K_S", "IQ3_S", "IQ3_M", "IQ4_XS", "IQ4_NL"])
@pytest.mark.slow
def test_imatrix_list_matches_llama_cpp(qtype, f16_gguf, tmp_path):
    """Oracle: llama.cpp itself refuses exactly the types in IMATRIX_REQUIRED without an imatrix."""
    import ctypes

    import llama_cpp

    from courseutils.llamacpp.bridge import _ftype, quiet_stderr

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(qtype)
    with quiet_stderr():
        rc = llama_cpp.llama_model_quantize(str(f16_gguf).encode(), str(tmp_path / "x.gguf").encode(),
                                            ctypes.byref(params))
    assert (rc != 0) == (qtype in IMATRIX_REQUIRED)


SAMPLE_LOAD_LOG = """\
load_tensors:   CPU_Mapped model buffer size =     3.26 MiB
load_tensors:   CPU_REPACK model buffer size =     2.29 MiB
load_tensors:        CUDA0 model buffer size =    10.00 MiB
llama_context:        CPU  output buffer size =     0.02 MiB
llama_kv_cache:        CPU KV buffer size =     0.75 MiB
llama_kv_cache: size =    0.75 MiB (   256 cells,   6 layers,  1/1 seqs), K (f16):    0.38 MiB, V (f16):    0.38 MiB
sched_reserve:        CPU compute buffer size =     4.50 MiB
~llama_context:        CPU compute buffer size is   1.1252 MiB, matches expectation of   1.1252 MiB
"""


def test_parse_buffer_sizes_reads_each_kind_and_buffer_type():
    from courseutils.llamacpp import parse_buffer_sizes

    MiB = 2**20
    sizes = parse_buffer_sizes(SAMPLE_LOAD_LOG)
    assert sizes["model"] == {"CPU_Mapped": round(3.26 * MiB), "CPU_REPACK": round(2.29 * MiB), "CUDA0": 10 * MiB}
    assert sizes["kv"] == {"CPU": round(0.75 * MiB)}
    assert sizes["output"] == {"CPU": round(0.02 * MiB)}   # "CPU  output": two spaces in llama.cpp's log
    assert sizes["compute"] == {"CPU": round(4.5 * MiB)}   # the "... is 1.1252 MiB" line at close is not a load line
    assert sizes["total"] == sum(sum(sizes[k].values()) for k in ("model", "kv", "output", "compute"))
    assert parse_buffer_sizes("") == {"model": {}, "kv": {}, "output": {}, "compute": {}, "total": 0}


@pytest.mark.parametrize("qtype", ["F16", "Q4_K_M"])
def test_memory_estimate_matches_what_llama_cpp_allocates(qtype):
    """Oracle: llama.cpp's own load log. It prints each buffer in MiB with two decimals, so each
    reported buffer is exact to +-0.005 MiB; the weights may span several buffers (CPU and
    CPU_REPACK when Q4_K is repacked), so the tolerance is 0.005 MiB per buffer."""
    tol = 0.005 * 2**20
    with LlamaCpp(get_gguf("tinycode", qtype), n_ctx=256) as llm:
        est, got = llm.memory_bytes(), llm.buffer_sizes()
    assert "model buffer size" in llm.load_log
    assert got["model"] and got["kv"] and got["compute"], got
    assert abs(sum(got["kv"].values()) - est["kv_cache"]) <= tol * len(got["kv"]), (got, est)
    assert abs(sum(got["model"].values()) - est["weights"]) <= tol * len(got["model"]), (got, est)
    assert got["total"] > est["total"]   # llama.cpp also allocates output and compute buffers


def test_kv_type_f32_doubles_the_cache_llama_cpp_allocates():
    """Oracle: llama.cpp's load report. An F32 KV cache holds twice the bytes of the default F16 one,
    and the estimate in memory_bytes follows the type."""
    with LlamaCpp(get_gguf("tinycode", "Q4_K_M"), n_ctx=256, flash_attn=False) as a, \
            LlamaCpp(get_gguf("tinycode", "Q4_K_M"), n_ctx=256, flash_attn=False, kv_type="f32") as b:
        kv16, kv32 = sum(a.buffer_sizes()["kv"].values()), sum(b.buffer_sizes()["kv"].values())
        assert kv32 == 2 * kv16 and b.memory_bytes()["kv_cache"] == kv32
        toks = list(range(1, 65))
        assert not np.array_equal(a.logits(toks), b.logits(toks))   # the F16 rounding of K and V shows
    with pytest.raises(CourseError, match="kv_type='q8'"):
        LlamaCpp(get_gguf("tinycode", "Q4_K_M"), n_ctx=256, kv_type="q8")


def test_per_tensor_types_go_through_llama_cpps_overrides(f16_gguf, tmp_path):
    """A full map of the blocks' matrices is stored exactly as given, and the mix loads and runs.

    (A partial map is honoured too, but llama.cpp's own Q4_K_S rules count the tensors they
    place, and an overridden tensor is not counted: measured, blk.4.attn_v then became Q5_K
    instead of Q4_K. So the course always passes a complete map.)"""
    reader = gguf.GGUFReader(str(f16_gguf))
    matrices = sorted(t.name for t in reader.tensors if t.name.startswith("blk.") and len(t.shape) == 2)
    cycle = ["Q8_0", "q6_k", "Q4_K", "Q2_K", "Q5_K"]
    mix = {name: cycle[i % len(cycle)] for i, name in enumerate(matrices)}
    out = quantize(f16_gguf, tmp_path / "mix.gguf", "Q4_K_S", tensor_types=mix)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert {k: types[k] for k in mix} == {k: v.upper() for k, v in mix.items()}
    partial = quantize(f16_gguf, tmp_path / "one.gguf", "Q4_K_S", tensor_types={"blk.0.ffn_down.weight": "Q8_0"})
    assert {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(partial)).tensors}["blk.0.ffn_down.weight"] == "Q8_0"
    with LlamaCpp(out, n_ctx=64) as llm:
        assert np.isfinite(llm.logits(llm.tokenize("def main():\n"))).all()


@pytest.mark.parametrize("mix, match", [
    ({"blk.0.ffn_dwn.weight": "Q8_0"}, r"tensor_types\['blk.0.ffn_dwn.weight'\]: no tensor of that name"),
    ({"blk.0.ffn_down.weight": "Q7_K"}, r"tensor_types\['blk.0.ffn_down.weight'\]='Q7_K' is not a ggml tensor type; allowed: .*Q6_K"),
])
def test_bad_per_tensor_types_are_clear_errors(f16_gguf, tmp_path, mix, match):
    with pytest.raises(QuantTypeError, match=match):
        quantize(f16_gguf, tmp_path / "x.gguf", "Q4_K_S", tensor_types=mix)
    assert list(tmp_path.iterdir()) == []
