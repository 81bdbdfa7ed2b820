"""How llama.cpp loads a model: the AMX-safe load mode, decided once and applied to every load.

On CPUs with AMX, llama.cpp's AMX weight buffers segfault on the first quantized matrix
product (llama.cpp issue 20824). A segfault kills the process, so the checks that touch
llama.cpp's kernels run in a subprocess: a crash becomes a failing test that names the type,
the CPU's flags and llama.cpp's system info, not a dead test run.
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from courseutils.core.errors import CourseError
from courseutils.llamacpp import EXTRA_BUFTS_ENV, cpu_flags, decide_load_mode, load_mode, quant_types, system_info

# What llama.cpp printed on the two kinds of machine (abridged from llama_print_system_info).
INFO_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
INFO_PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 |"
SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8"}
ZEN4 = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}


@pytest.mark.parametrize("flags, info, extra_bufts, why", [
    (SAPPHIRE_RAPIDS, INFO_AMX, False, "amx_int8, amx_tile in /proc/cpuinfo"),
    # a portable build does not report AMX on an AMX CPU: the CPU's own flags still decide
    (SAPPHIRE_RAPIDS, INFO_PORTABLE, False, "amx_int8, amx_tile in /proc/cpuinfo"),
    ({"avx2", "amx_tile"}, INFO_PORTABLE, False, "amx_tile in /proc/cpuinfo"),
    # no /proc/cpuinfo (macOS, a container without it) but a wheel built with AMX
    (set(), INFO_AMX, False, "llama.cpp reports AMX_INT8 = 1"),
    (ZEN4, INFO_PORTABLE, True, "no AMX"),
    (set(), "CPU : NEON = 1 | ARM_FMA = 1 | REPACK = 1 |", True, "no AMX"),
])
def test_load_mode_follows_the_cpu_and_llama_cpp(flags, info, extra_bufts, why):
    mode = decide_load_mode(frozenset(flags), info)
    assert mode.use_extra_bufts is extra_bufts
    assert why in mode.reason


def test_amx_int8_not_mistaken_for_similar_names():
    assert decide_load_mode(frozenset({"avx512_vnni"}), "AMX_INT8 = 0 | AMX_INT8_X = 1").use_extra_bufts


@pytest.mark.parametrize("value, extra_bufts", [("0", False), ("off", False), ("1", True), ("ON", True)])
def test_override_wins(value, extra_bufts):
    assert decide_load_mode(frozenset(SAPPHIRE_RAPIDS), INFO_AMX, value).use_extra_bufts is extra_bufts
    assert decide_load_mode(frozenset(ZEN4), INFO_PORTABLE, value).use_extra_bufts is extra_bufts


def test_unset_or_empty_override_is_ignored():
    assert not decide_load_mode(frozenset(SAPPHIRE_RAPIDS), INFO_AMX, "").use_extra_bufts
    assert decide_load_mode(frozenset(ZEN4), INFO_PORTABLE, None).use_extra_bufts


def test_bad_override_is_a_clear_error():
    with pytest.raises(CourseError, match=f"{EXTRA_BUFTS_ENV}='maybe'.*0/off or 1/on"):
        decide_load_mode(frozenset(), INFO_PORTABLE, "maybe")


def test_cpu_flags_parses_proc_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 amx_tile amx_int8\n\n"
                 "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(f) == {"fpu", "avx2", "amx_tile", "amx_int8"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machine_is_decided_from_its_own_flags():
    mode = load_mode()
    has_amx = bool({"amx_int8", "amx_tile"} & cpu_flags()) or "AMX_INT8 = 1" in system_info()
    assert mode.use_extra_bufts is not has_amx


def test_every_load_goes_through_llamacpp(root):
    """Only courseutils' bridge constructs llama_cpp.Llama, so the load mode applies everywhere."""
    offenders = []
    for folder, pattern in [("src", "*.py"), ("benchmarks", "*.py"), ("lessons", "*.ipynb"),
                            ("quizzes/source", "*.ipynb"), ("quizzes/student", "*.ipynb")]:
        for path in sorted((root / folder).rglob(pattern)):
            text = path.read_text()
            if path.parent.name == "llamacpp" and path.parent.parent.name == "courseutils":
                continue
            if re.search(r"(?<![\w.])Llama\(|llama_cpp\.Llama\(|llama_model_load_from_file", text):
                offenders.append(str(path.relative_to(root)))
    assert not offenders, f"load llama.cpp models with courseutils.llamacpp.LlamaCpp, not directly: {offenders}"


def _run_isolated(script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=timeout)


def _crash_report(proc: subprocess.CompletedProcess, what: str) -> str:
    signal = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
    amx = sorted(f for f in cpu_flags() if f.startswith("amx"))
    return (f"{what} died with {signal}\nCPU AMX flags: {amx or 'none'}\nload mode: {load_mode()}\n"
            f"llama.cpp: {system_info()}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("use_extra_bufts", [True, False])
def test_load_mode_reaches_llama_cpp(use_extra_bufts):
    """With extra buffer types on, llama.cpp repacks Q4_0 weights (where the build can); off, it never does."""
    if "REPACK = 1" not in system_info():
        pytest.skip("this llama.cpp build has no CPU repacking, so the two modes load alike")
    from courseutils.llamacpp import get_gguf

    path = get_gguf("tinycode", "Q4_0")
    proc = _run_isolated(f"""
        from courseutils.llamacpp import LlamaCpp, LoadMode
        llm = LlamaCpp({str(path)!r}, n_ctx=64, mode=LoadMode({use_extra_bufts}, "test"))
        llm.logits(llm.tokenize("def f(x):"))
        print(llm.load_log)  # llama.cpp's own log of the load: buffer types and sizes
    """)
    assert proc.returncode == 0, _crash_report(proc, "loading Q4_0")
    repacked = "CPU_REPACK" in proc.stdout
    assert repacked is use_extra_bufts, proc.stdout[-2000:]


def lesson_types() -> list[str]:
    """Every llama.cpp type lessons 00-05 load (all that quantize without an importance matrix)."""
    return quant_types(include_imatrix_only=False)


@pytest.mark.slow
def test_every_lesson_type_loads_generates_and_scores_in_a_subprocess():
    from courseutils.llamacpp import get_gguf

    paths = {q: str(get_gguf("tinycode", q)) for q in lesson_types()}
    proc = _run_isolated(f"""
        import numpy as np
        from courseutils.llamacpp import LlamaCpp
        for qtype, path in {paths!r}.items():
            print("START", qtype, flush=True)
            with LlamaCpp(path, n_ctx=64) as llm:
                text = llm.generate("def parse_args(argv):", max_tokens=8)
                logits = llm.logits(llm.tokenize("for i in range(10):\\n    print(i)"))
            assert np.isfinite(logits).all(), qtype
            print("OK", qtype, repr(text), flush=True)
    """)
    started = re.findall(r"^START (\S+)", proc.stdout, re.M)
    done = re.findall(r"^OK (\S+)", proc.stdout, re.M)
    if proc.returncode != 0:
        failed = started[-1] if started else "(before the first type)"
        pytest.fail(_crash_report(proc, f"llama.cpp on type {failed}"))
    assert done == list(paths), f"types that did not finish: {sorted(set(paths) - set(done))}"
