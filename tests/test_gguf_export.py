import os
import numpy as np
import pytest

from courseutils.core.errors import CourseError, ModelError, TokenizerMismatchError, UnknownPreTokenizerError
from courseutils.ggml.gguf_export import export_gguf, gguf_pre_tokenizer, gguf_tensor_name, permute_qk
from courseutils.ggml.pretokenizer import probe_hash
from courseutils.llamacpp import LlamaCpp, check_tokenizer_parity, first_difference, get_gguf
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


# Llama 3's pre-tokenizer regex, as its tokenizer.json has it (llama.cpp implements it as "llama-bpe").
# Unlike GPT-2's it glues punctuation to the newline after it ("):\n") and a non-letter to the
# letters after it ("_name"), and cuts digits in threes, so it learns merges GPT-2's split can never use.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.fixture(scope="module")
def llama3_style_dir(tmp_path_factory):
    """A tiny random Llama whose byte-level BPE tokenizer (512 tokens, trained here on tinycode's
    validation text) pre-tokenizes like Llama 3: Split(regex) then ByteLevel without its own regex,
    and ignore_merges, as Llama 3's tokenizer.json (llama.cpp sets ignore_merges for llama-bpe)."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from courseutils.model.corpus import corpus_text

    special = ["<|bos|>", "<|eos|>", "<|pad|>"]
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=special, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus_text("validation")[:100_000]], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<|bos|> $A", special_tokens=[("<|bos|>", 0)])
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                     pad_token="<|pad|>", clean_up_tokenization_spaces=False)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    out = tmp_path_factory.mktemp("llama3-style") / "tiny-llama3-style"
    LlamaForCausalLM(cfg).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def test_first_difference():
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2 and first_difference([1, 2, 3], [1, 2]) == 2


def test_tinycode_export_is_detected_as_gpt2_and_tokenizes_like_hf(f16_gguf):
    assert gguf_pre_tokenizer(f16_gguf) == "gpt-2"
    assert check_tokenizer_parity(f16_gguf, "tinycode") > 600   # tokens of PARITY_TEXT compared


def test_unknown_tokenizer_is_refused_not_guessed(llama3_style_dir, tmp_path):
    from courseutils.model.loader import load_tokenizer

    digest = probe_hash(load_tokenizer(llama3_style_dir))
    with pytest.raises(UnknownPreTokenizerError, match="pre_tokenizer=") as err:
        export_gguf(llama3_style_dir, tmp_path / "x.gguf", dtype="F32")
    assert digest in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model, wrong", [
    ("llama3", "gpt-2"),            # a Llama-3-style tokenizer exported as GPT-2
    ("tinycode", "llama-bpe"),      # tinycode (GPT-2 split) exported as Llama 3
])
def test_wrong_pre_tokenizer_is_caught_by_the_parity_check(llama3_style_dir, model, wrong, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))   # a fresh export, never a cached file
    ref = llama3_style_dir if model == "llama3" else model
    with pytest.raises(TokenizerMismatchError) as err:
        get_gguf(ref, "F16", pre_tokenizer=wrong)
    msg = str(err.value)
    assert f"tokenizer.ggml.pre={wrong!r}" in msg and "First difference at token" in msg, msg
    assert "\n  llama.cpp [" in msg and "\n  HF        [" in msg and "pre_tokenizer=" in msg, msg
    # the marked token ('>') differs between the two lines
    cpp_line, hf_line = (line for line in msg.splitlines() if line.startswith(("  llama.cpp", "  HF ")))
    assert cpp_line.split(">")[1].split(",")[0] != hf_line.split(">")[1].split(",")[0], msg
    assert list(tmp_path.glob("*.gguf")) == []   # the bad export was deleted


def test_right_pre_tokenizer_passes(llama3_style_dir, tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))   # a fresh export, never a cached file

    from courseutils.model.loader import load_model
    from courseutils.model.train import encode, hf_chunk_logits

    path = get_gguf(llama3_style_dir, "F16", pre_tokenizer="llama-bpe")
    assert gguf_pre_tokenizer(path) == "llama-bpe"
    assert check_tokenizer_parity(path, llama3_style_dir) > 600
    model, tok = load_model(llama3_style_dir, device="cpu")
    text = "def f(x):\n    return x.append(12345)  # I'll see\n"
    with LlamaCpp(path, n_ctx=64) as llm:
        ids = llm.tokenize(text)
        assert ids == encode(tok, text).tolist()
        assert np.allclose(llm.logits(ids), hf_chunk_logits(model, ids), atol=2e-2)


def test_explicit_pre_tokenizer_rewrites_a_file_written_with_another(tmp_path):
    path = export_gguf("tinycode", tmp_path / "tc.gguf", dtype="F32")
    assert gguf_pre_tokenizer(path) == "gpt-2"                     # detected from the probe hash
    mtime = path.stat().st_mtime_ns
    assert export_gguf("tinycode", path, dtype="F32", pre_tokenizer="gpt-2").stat().st_mtime_ns == mtime  # reused
    export_gguf("tinycode", path, dtype="F32", pre_tokenizer="llama-bpe")
    assert gguf_pre_tokenizer(path) == "llama-bpe"                 # rewritten, not silently reused
    with pytest.raises(CourseError, match="pre_tokenizer"):
        export_gguf("tinycode", path, dtype="F32", pre_tokenizer="")


def test_parity_stamp_lets_a_fresh_process_skip_the_check(tmp_path):
    """A passed check is stamped beside the file; a new process trusts the stamp (and never
    imports transformers for it) until the file changes, then checks again."""
    import json
    import subprocess
    import sys

    path = export_gguf("tinycode", tmp_path / "tc.gguf", dtype="F32")
    n = check_tokenizer_parity(path, "tinycode")
    stamp = path.with_name(path.name + ".parity.json")
    assert json.loads(stamp.read_text())["n_tokens"] == n
    probe = ("import sys; from courseutils.llamacpp import check_tokenizer_parity as c; "
             f"n = c({str(path)!r}, 'tinycode'); print(n, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(n), "False"], out
    # the same file rewritten (new mtime): the stamp no longer matches, so the check really runs
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(n), "True"], out
