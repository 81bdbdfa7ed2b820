"""tools/build_llama_cpp.py: llama-cpp-python built for this CPU, never with AMX, cached by its flags."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest


@pytest.fixture(scope="module")
def tool(root):
    spec = importlib.util.spec_from_file_location("build_llama_cpp", root / "tools" / "build_llama_cpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAPPHIRE_RAPIDS = frozenset("sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi "
                            "avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16".split())
HASWELL = frozenset("sse4_2 avx f16c fma avx2 bmi2".split())


def test_amx_is_always_off_even_on_an_amx_cpu(tool):
    switches = tool.ggml_switches(SAPPHIRE_RAPIDS, "x86_64")
    assert not any(switches[n] for n in ("AMX_TILE", "AMX_INT8", "AMX_BF16"))
    assert switches["AVX512"] and switches["AVX512_VNNI"] and switches["AVX2"]
    args = tool.cmake_args(switches)
    assert args[0] == "-DGGML_NATIVE=OFF" and "-DGGML_AMX_INT8=OFF" in args and "-DGGML_AVX512=ON" in args


def test_only_instructions_the_cpu_has(tool):
    switches = tool.ggml_switches(HASWELL, "x86_64")
    assert switches["AVX2"] and switches["FMA"]
    assert not switches["AVX512"] and not switches["AVX512_VNNI"] and not switches["AVX_VNNI"]
    # AVX-512 needs all five base extensions, as ggml's -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw
    assert not tool.ggml_switches(HASWELL | {"avx512f"}, "x86_64")["AVX512"]


def test_non_x86_keeps_ggmls_own_detection(tool):
    assert tool.ggml_switches(frozenset({"neon", "asimd"}), "aarch64") == {}
    assert tool.cmake_args({}, "-DGGML_METAL=on") == ["-DGGML_METAL=on"]


def test_the_cache_key_changes_with_flags_version_and_user_args(tool):
    sr = tool.cmake_args(tool.ggml_switches(SAPPHIRE_RAPIDS, "x86_64"))
    hw = tool.cmake_args(tool.ggml_switches(HASWELL, "x86_64"))
    keys = {tool.build_key("0.3.36", sr, SAPPHIRE_RAPIDS), tool.build_key("0.3.36", hw, HASWELL),
            tool.build_key("0.3.37", hw, HASWELL), tool.build_key("0.3.36", hw + ["-DGGML_CUDA=on"], HASWELL)}
    assert len(keys) == 4
    assert tool.build_key("0.3.36", hw, HASWELL) == tool.build_key("0.3.36", list(hw), HASWELL)


def test_version_comes_from_the_constraints(tool, root, tmp_path):
    assert tool.pinned_version(root / "constraints.txt")
    bad = tmp_path / "constraints.txt"
    bad.write_text("numpy==2.0\n")
    with pytest.raises(SystemExit, match="must pin llama-cpp-python"):
        tool.pinned_version(bad)


def test_the_installed_build_is_the_one_for_this_cpu(tool, root):
    """.venv's llama-cpp-python was installed by the tool, with this CPU's key (what make install does)."""
    marker = __import__("pathlib").Path(sys.prefix) / ".llama-cpp-python.json"
    if not marker.is_file():
        pytest.skip(f"{sys.prefix} was not set up by make install")
    installed = json.loads(marker.read_text())
    assert installed["key"] == tool.Plan(root / "constraints.txt").key
    assert "AMX_INT8" in installed["disabled"] or not installed["cmake_args"]


def test_flags_command_prints_json(tool, capsys, root):
    assert tool.main(["--constraints", str(root / "constraints.txt"), "flags"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key"].startswith(out["version"]) and "cmake_args" in out
