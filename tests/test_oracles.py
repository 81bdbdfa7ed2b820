"""Oracles from outside the package: llama.cpp's own ``llama-perplexity`` tool.

tests/fixtures/llama_perplexity.json holds what ``llama-perplexity`` printed for tinycode F16 and
Q4_K_M (``make oracles`` regenerates it; tests/fixtures/make_oracles.py says how). Here the
course's own code path (``courseutils.scoring.evaluate.perplexity_gguf``: llama-cpp-python's
logits, our chunking, our numpy NLL) recomputes the same numbers on the same file, text and
options, and must agree to 1e-4 relative.

It also holds the load-memory oracle: the bytes the course predicts from the GGUF file alone
(our numpy reader's tensor table + the KV-cache formula) against the buffers llama.cpp says it
allocated (``LlamaCpp.buffer_sizes()``, read from its load log).

(The other oracles sit with the module they check: torch KLD vs numpy KLD in test_metrics.py,
FP8 vs ``torch.float8_*`` in test_formats.py, ``memory_bytes()`` vs ``buffer_sizes()`` in
test_llamacpp.py.)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = FIXTURES / "llama_perplexity.json"
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def oracle() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def oracle_text(oracle) -> str:
    data = (FIXTURES / oracle["text_file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == oracle["text_sha256"], (
        f"{oracle['text_file']} changed since the fixture was made: regenerate it with `make oracles`")
    return data.decode("utf-8")


def test_fixture_records_the_options_it_was_made_with(oracle):
    """The fixture says how llama-perplexity was run: version, -c -b -ub -fa, chunks."""
    opts = oracle["options"]
    value = {opts[i]: opts[i + 1] for i in range(len(opts) - 1) if opts[i].startswith("-")}
    n = str(oracle["n_ctx"])
    assert (value["-c"], value["-b"], value["-ub"], value["-fa"]) == (n, n, n, "on")
    assert value["--chunks"] == str(oracle["n_chunks"])
    assert oracle["tool_version"].startswith("version:")
    for key in ("results", "results_no_repack"):
        for row in oracle[key].values():
            assert row["chunks_reported"] == oracle["n_chunks"] and row["n_ctx_reported"] == oracle["n_ctx"]
            assert ("--no-repack" in row["command"]) == (key == "results_no_repack")


@pytest.mark.parametrize("repack", [True, False], ids=["repack", "no_repack"])
@pytest.mark.parametrize("qtype", ["F16", "Q4_K_M"])
def test_perplexity_matches_llama_perplexity(qtype, repack, oracle, oracle_text, monkeypatch):
    """Both load modes of the course (extra buffer types on: llama.cpp's weight repacking; off: the
    safe mode of AMX CPUs) against llama-perplexity run the same way (``--no-repack`` for off)."""
    from courseutils.llamacpp import EXTRA_BUFTS_ENV, get_gguf, load_mode
    from courseutils.scoring.evaluate import perplexity_gguf
    from courseutils.scoring.scorecard import sha256_file

    monkeypatch.setenv(EXTRA_BUFTS_ENV, "1" if repack else "0")
    assert load_mode().use_extra_bufts is repack
    want = oracle["results" if repack else "results_no_repack"][qtype]
    path = get_gguf("tinycode", qtype)
    sha = sha256_file(path)
    if sha != want["gguf_sha256"]:
        pytest.fail(f"{path.name} has sha256 {sha[:16]}…, the fixture was made from {want['gguf_sha256'][:16]}… "
                    "(the export, the quantizer or the weights changed): regenerate tests/fixtures/"
                    "llama_perplexity.json with `make oracles` and check the new numbers", pytrace=False)
    ours = perplexity_gguf(path, oracle_text, n_ctx=oracle["n_ctx"], n_chunks=oracle["n_chunks"])
    assert ours["n_chunks"] == want["chunks_reported"]
    assert ours["n_scored"] == oracle["n_chunks"] * (oracle["n_ctx"] - 1 - oracle["n_ctx"] // 2)
    assert ours["ppl"] == pytest.approx(want["ppl"], rel=REL_TOL), (
        f"{qtype}, repacking {'on' if repack else 'off'}: courseutils PPL {ours['ppl']:.6f}, "
        f"llama-perplexity {want['ppl']:.4f} ({oracle['tool_version']})")


def test_make_oracles_has_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(FIXTURES / "make_oracles.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--bin" in out.stdout and "--chunks" in out.stdout, out.stderr


# --------------------------------------------------------------------------- load bytes
MiB = 2**20


def predicted_load_bytes(path, n_ctx: int) -> dict:
    """What loading ``path`` should allocate, from the file alone: weights = the tensor table's
    bytes (courseutils.ggml.ggufinfo, numpy, no llama.cpp); KV cache = K and V, F16 (llama.cpp's
    default), for every layer, position and KV head: 2 x n_layer x n_ctx x n_kv_head x head_dim x 2."""
    from courseutils.ggml.ggufinfo import read_gguf

    info = read_gguf(path)
    meta = info.metadata
    arch = meta["general.architecture"]
    n_head = meta[f"{arch}.attention.head_count"]
    head_dim = meta.get(f"{arch}.attention.key_length", meta[f"{arch}.embedding_length"] // n_head)
    n_kv = meta.get(f"{arch}.attention.head_count_kv", n_head)
    kv = 2 * meta[f"{arch}.block_count"] * n_ctx * n_kv * head_dim * 2
    return {"weights": info.tensor_bytes, "kv_cache": kv}


@pytest.mark.parametrize("qtype", ["F16", "Q4_K_M",   # one buffer; two when K-quants are repacked
                                   pytest.param("Q8_0", marks=pytest.mark.slow),
                                   pytest.param("Q2_K", marks=pytest.mark.slow)])
def test_predicted_load_bytes_match_what_llama_cpp_allocates(qtype):
    """Tolerance: llama.cpp prints each buffer in MiB with two decimals, so each reported buffer is
    exact to +-0.005 MiB; weights can span two buffers (CPU and CPU_REPACK when K-quants are
    repacked for this CPU), hence 0.005 MiB per reported buffer."""
    from courseutils.llamacpp import LlamaCpp, get_gguf

    n_ctx = 256
    path = get_gguf("tinycode", qtype)
    want = predicted_load_bytes(path, n_ctx)
    with LlamaCpp(path, n_ctx=n_ctx) as llm:
        got = llm.buffer_sizes()
        scorecard = llm.memory_bytes()           # what the scorecard reports as load_bytes
    model, kv = sum(got["model"].values()), sum(got["kv"].values())
    assert got["model"] and got["kv"], f"llama.cpp reported no model/KV buffer: {got}"
    assert abs(model - want["weights"]) <= 0.005 * MiB * len(got["model"]), (qtype, got["model"], want)
    assert abs(kv - want["kv_cache"]) <= 0.005 * MiB * len(got["kv"]), (qtype, got["kv"], want)
    # the scorecard's load_bytes is the same prediction (its weights come from llama.cpp's model size)
    assert scorecard == {"weights": want["weights"], "kv_cache": want["kv_cache"],
                         "total": want["weights"] + want["kv_cache"]}
