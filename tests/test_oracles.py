"""Oracles from outside the package: llama.cpp's own ``llama-perplexity`` tool.

tests/fixtures/llama_perplexity.json holds what ``llama-perplexity`` printed for tinycode F16 and
Q4_K_M (``make oracles`` regenerates it; tests/fixtures/make_oracles.py says how). Here the
course's own code path (``courseutils.scoring.evaluate.perplexity_gguf``: llama-cpp-python's
logits, our chunking, our numpy NLL) recomputes the same numbers on the same file, text and
options, and must agree to 1e-4 relative.

(The other oracles sit with the module they check: torch KLD vs numpy KLD in test_metrics.py,
FP8 vs ``torch.float8_*`` in test_formats.py.)
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
    for row in oracle["results"].values():
        assert row["chunks_reported"] == oracle["n_chunks"] and row["n_ctx_reported"] == oracle["n_ctx"]


@pytest.mark.parametrize("qtype", ["F16", "Q4_K_M"])
def test_perplexity_matches_llama_perplexity(qtype, oracle, oracle_text):
    from courseutils.llamacpp import get_gguf, load_mode
    from courseutils.scoring.evaluate import perplexity_gguf
    from courseutils.scoring.scorecard import sha256_file

    want = oracle["results"][qtype]
    path = get_gguf("tinycode", qtype)
    sha = sha256_file(path)
    if sha != want["gguf_sha256"]:
        pytest.fail(f"{path.name} has sha256 {sha[:16]}…, the fixture was made from {want['gguf_sha256'][:16]}… "
                    "(the export, the quantizer or the weights changed): regenerate tests/fixtures/"
                    "llama_perplexity.json with `make oracles` and check the new numbers", pytrace=False)
    ours = perplexity_gguf(path, oracle_text, n_ctx=oracle["n_ctx"], n_chunks=oracle["n_chunks"])
    assert ours["n_chunks"] == want["chunks_reported"]
    assert ours["n_scored"] == oracle["n_chunks"] * (oracle["n_ctx"] - 1 - oracle["n_ctx"] // 2)
    note = "" if load_mode().use_extra_bufts == oracle["repack"] else (
        f" (note: the fixture was made with weight repacking {'on' if oracle['repack'] else 'off'}, "
        "this machine loads with it the other way)")
    assert ours["ppl"] == pytest.approx(want["ppl"], rel=REL_TOL), (
        f"{qtype}: courseutils PPL {ours['ppl']:.6f}, llama-perplexity {want['ppl']:.4f} "
        f"({oracle['tool_version']}){note}")


def test_make_oracles_has_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(FIXTURES / "make_oracles.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--bin" in out.stdout and "--chunks" in out.stdout, out.stderr
