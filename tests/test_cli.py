import json
import subprocess
import sys

import pytest

from courseutils.scoring.evaluate import perplexity_gguf


def run(*args):
    return subprocess.run([sys.executable, "-m", "courseutils", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("sub", [[], ["info"], ["scorecard"], ["quantize"], ["perplexity"], ["types"]])
def test_help(sub):
    r = run(*sub, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


@pytest.mark.parametrize("args, match", [
    (["quantize", "tinycode", "--type", "Q9_9", "-o", "x.gguf"], "qtype='Q9_9'"),
    (["quantize", "tinycode", "--type", "Q4_0", "-o", "/no/such/dir/x.gguf"], "does not exist"),
    (["quantize", "no/such/model/dir/", "--type", "Q4_0", "-o", "x.gguf"], "model="),
    (["perplexity", "missing.gguf", "--text", "missing.txt"], "--text='missing.txt'"),
    (["scorecard", "--types", "F16,Q7_K"], "Q7_K"),
    (["scorecard", "--min-top1", "1.5"], "min_top1"),
])
def test_errors_are_one_line(args, match, tmp_path):
    r = subprocess.run([sys.executable, "-m", "courseutils", *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=600)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and match in last and "Traceback" not in r.stderr


@pytest.mark.slow
def test_perplexity_command_matches_the_library(f16_gguf, val_text, tmp_path):
    from courseutils.llamacpp import get_gguf

    text_file = tmp_path / "val.txt"
    text_file.write_text(val_text[:120_000])
    q4 = get_gguf("tinycode", "Q4_K_M")
    r = run("perplexity", str(q4), "--text", str(text_file), "--ctx", "128", "--chunks", "6", "--base",
            str(f16_gguf), "--json", str(tmp_path / "p.json"), "--quiet")
    assert r.returncode == 0, r.stderr
    lib = perplexity_gguf(q4, val_text[:120_000], n_ctx=128, base=f16_gguf, n_chunks=6)
    assert f"PPL = {lib['ppl']:.4f}" in r.stdout
    assert json.loads((tmp_path / "p.json").read_text())["kld"] == pytest.approx(lib["kld"])


@pytest.mark.slow
def test_quantize_command(tmp_path):
    r = run("quantize", "tinycode", "--type", "Q4_0", "-o", str(tmp_path / "q.gguf"))
    assert r.returncode == 0, r.stderr
    import gguf
    types = {t.tensor_type.name for t in gguf.GGUFReader(str(tmp_path / "q.gguf")).tensors}
    assert "Q4_0" in types


@pytest.mark.slow
def test_info_json():
    r = run("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["llama_cpp_backend"] in ("CPU", "CUDA") and info["tinycode"]["parameters"] > 1e6


@pytest.mark.parametrize("device, offload", [("cpu", False), ("cuda", True), ("cuda", False)])
def test_info_reports_the_llama_cpp_backend(device, offload, monkeypatch, capsys):
    """`info` says CUDA when llama-cpp-python offloads to the GPU, and warns when torch has a GPU but llama.cpp not."""
    from courseutils import cli
    from courseutils.core import config
    from courseutils.llamacpp import bridge

    monkeypatch.setattr(config, "get_device", lambda device_=None: device)
    monkeypatch.setattr(bridge, "gpu_offload_supported", lambda: offload)
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    backend = "CUDA" if offload else "CPU"
    assert f"torch device: {device} | llama.cpp backend: {backend} |" in out
    assert ("note: torch uses the GPU, but this llama-cpp-python is a CPU build" in out) == (device == "cuda" and not offload)
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["llama_cpp_backend"] == backend and info["device"] == device
