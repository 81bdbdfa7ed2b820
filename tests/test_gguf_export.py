import numpy as np
import pytest

from courseutils.core.errors import CourseError, ModelError
from courseutils.ggml.gguf_export import export_gguf, gguf_tensor_name, permute_qk
from courseutils.llamacpp import LlamaCpp
from courseutils.model.train import encode, hf_chunk_logits, hf_perplexity


def _rope_halves(q, theta):
    """Hugging Face Llama: rotate the two halves of the head (rotate_half)."""
    d = q.size
    cos, sin = np.cos(np.r_[theta, theta]), np.sin(np.r_[theta, theta])
    rot = np.r_[-q[d // 2:], q[: d // 2]]
    return q * cos + rot * sin


def _rope_pairs(q, theta):
    """llama.cpp LLAMA (rope type NORM): rotate adjacent pairs (q[2i], q[2i+1]) by theta_i."""
    out = q.copy()
    c, s = np.cos(theta), np.sin(theta)
    out[0::2] = q[0::2] * c - q[1::2] * s
    out[1::2] = q[0::2] * s + q[1::2] * c
    return out


def test_permutation_turns_half_rope_into_pair_rope():
    rng = np.random.default_rng(0)
    n_head, d, d_model = 3, 8, 5
    W = rng.normal(size=(n_head * d, d_model))
    x = rng.normal(size=d_model)
    theta = 7 * 10000.0 ** (-np.arange(d // 2) * 2 / d)   # position 7
    q_hf, q_cpp = W @ x, permute_qk(W, n_head) @ x
    for h in range(n_head):
        hf_scores = _rope_halves(q_hf[h * d:(h + 1) * d], theta)
        cpp_scores = _rope_pairs(q_cpp[h * d:(h + 1) * d], theta)
        # same vector up to the same reordering of components -> same dot products
        assert np.allclose(np.sort(hf_scores), np.sort(cpp_scores))
        assert np.isclose(hf_scores @ hf_scores, cpp_scores @ cpp_scores)
    with pytest.raises(CourseError, match="rows"):
        permute_qk(np.zeros((10, 4)), 3)


def test_tensor_names():
    assert gguf_tensor_name("model.layers.3.mlp.up_proj.weight") == "blk.3.ffn_up.weight"
    assert gguf_tensor_name("model.embed_tokens.weight") == "token_embd.weight"
    with pytest.raises(ModelError, match="counterpart"):
        gguf_tensor_name("model.layers.0.mlp.bogus.weight")


@pytest.mark.slow
def test_llamacpp_tokenizes_exactly_like_hf(tinycode, f16_gguf, val_text):
    _, tok = tinycode
    text = val_text[:30_000]
    with LlamaCpp(f16_gguf, n_ctx=256) as llm:
        assert llm.tokenize(text) == encode(tok, text).tolist()


@pytest.mark.slow
def test_hf_and_llamacpp_f16_perplexity_agree(tinycode, f16_gguf, val_text):
    from courseutils.scoring.evaluate import perplexity_gguf

    model, tok = tinycode
    text = val_text[:200_000]
    ppl_hf = hf_perplexity(model, encode(tok, text), 256, tok.bos_token_id, n_chunks=8)
    ppl_cpp = perplexity_gguf(f16_gguf, text, n_ctx=256, n_chunks=8)["ppl"]
    assert abs(ppl_cpp / ppl_hf - 1) < 1e-3, (ppl_hf, ppl_cpp)


def test_f32_export_matches_hf_logits(tinycode, tmp_path, val_text):
    model, tok = tinycode
    path = export_gguf("tinycode", tmp_path / "tc-f32.gguf", dtype="F32")
    chunk = encode(tok, val_text[:5000])[:128]
    with LlamaCpp(path, n_ctx=128) as llm:
        cpp = llm.logits(chunk)
    hf = hf_chunk_logits(model, chunk)
    assert np.abs(cpp - hf).max() < 2e-3 * np.abs(hf).max()


def test_untied_model_exports_output_weight(tiny_llama_dir, tmp_path):
    import gguf
    from courseutils.model.loader import load_model

    path = export_gguf(tiny_llama_dir, tmp_path / "tiny.gguf", dtype="F32")
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert "output.weight" in names and "blk.0.attn_q.weight" in names
    model, tok = load_model(tiny_llama_dir, device="cpu")
    ids = encode(tok, "import os\nprint(os.getcwd())\n")
    with LlamaCpp(path, n_ctx=64) as llm:
        assert np.allclose(llm.logits(ids), hf_chunk_logits(model, ids), atol=1e-3)


def test_bad_dtype_and_missing_directory(tmp_path):
    with pytest.raises(CourseError, match="dtype"):
        export_gguf("tinycode", tmp_path / "x.gguf", dtype="Q4_0")
    with pytest.raises(CourseError, match="does not exist"):
        export_gguf("tinycode", tmp_path / "missing" / "x.gguf")


def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    import gguf

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_gguf("tinycode", tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []
