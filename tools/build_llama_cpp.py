#!/usr/bin/env python3
"""Build llama-cpp-python (and llama.cpp's own tools) for this CPU, safely, and cache the result.

Why this exists
---------------
pip compiles llama-cpp-python with ``GGML_NATIVE=ON``: every instruction the *building* CPU
has, AMX tiles included. pip then caches that wheel by version alone and serves it to the
next machine, whatever its CPU: a wheel built on a Xeon with AMX dies with "illegal
instruction" on a laptop, and on the Xeon itself llama.cpp's AMX weight buffers segfault
on the first quantized matrix product (llama.cpp issue 20824).

So the course builds it itself:

- ``GGML_NATIVE=OFF`` and an explicit list of instruction sets, read from this CPU
  (``/proc/cpuinfo``) and limited to those ggml knows: SSE4.2, AVX, F16C, FMA, AVX2, BMI2,
  AVX-VNNI and the AVX-512 family. AMX is always off, so the AMX buffer type is not even
  compiled in.
- The wheel is cached under a key made of the llama-cpp-python version, those flags, any
  ``CMAKE_ARGS`` you add (e.g. ``-DGGML_CUDA=on``) and the platform. A machine with other
  flags gets a key of its own and builds its own wheel; pip's cache is bypassed
  (``--no-cache-dir``), so it cannot hand back a wheel built for another CPU.

Usage (the Makefile runs these; ``--help`` on each command says more)::

    python tools/build_llama_cpp.py flags                      # what this CPU gets, and the key
    python tools/build_llama_cpp.py wheel --python .venv/bin/python
    python tools/build_llama_cpp.py tools --python .venv/bin/python llama-perplexity llama-imatrix

The cache lives in ``$COURSE_BUILD_CACHE`` (default ``~/.cache/courseutils/llama-cpp``).
Standard library only: it runs before anything else is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
PACKAGE = "llama-cpp-python"

# ggml's CMake switch -> the /proc/cpuinfo flags it needs (all of them). Order as in
# ggml/CMakeLists.txt. AMX_TILE / AMX_INT8 / AMX_BF16 are deliberately absent: always OFF.
GGML_X86_FLAGS: dict[str, tuple[str, ...]] = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512f", "avx512vbmi"),
    "AVX512_VNNI": ("avx512f", "avx512_vnni"),
    "AVX512_BF16": ("avx512f", "avx512_bf16"),
}
ALWAYS_OFF = ("AMX_TILE", "AMX_INT8", "AMX_BF16")


def read_cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The ``flags`` (x86) or ``Features`` (ARM) of the first CPU listed; empty if unreadable."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.M)
    return frozenset(match.group(1).split()) if match else frozenset()


def ggml_switches(cpu_flags: frozenset[str], machine: str | None = None) -> dict[str, bool]:
    """ggml's instruction-set switches for a CPU with ``cpu_flags`` (empty on non-x86 CPUs)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i686", "x86"):
        return {}
    switches = {name: all(f in cpu_flags for f in needs) for name, needs in GGML_X86_FLAGS.items()}
    switches.update({name: False for name in ALWAYS_OFF})
    return switches


def cmake_args(switches: dict[str, bool], extra: str = "") -> list[str]:
    """CMake arguments: not native, every switch explicit, then the user's own ``CMAKE_ARGS``."""
    if not switches:  # not x86: ggml's native default is the only one that knows the CPU (e.g. ARM)
        return extra.split()
    args = ["-DGGML_NATIVE=OFF"] + [f"-DGGML_{name}={'ON' if on else 'OFF'}" for name, on in switches.items()]
    return args + extra.split()


def pinned_version(constraints: Path = CONSTRAINTS) -> str:
    """The llama-cpp-python version pinned in ``constraints.txt``."""
    text = constraints.read_text() if constraints.is_file() else ""
    match = re.search(r"^llama[-_]cpp[-_]python\s*==\s*([\w.]+)\s*$", text, re.M | re.I)
    if not match:
        raise SystemExit(f"error: {constraints} must pin {PACKAGE}==VERSION")
    return match.group(1)


def build_key(version: str, args: list[str], cpu_flags: frozenset[str]) -> str:
    """Cache key: version + CMake arguments + platform (+ the CPU's features where not x86)."""
    machine = platform.machine().lower()
    cpu = "" if any(a.startswith("-DGGML_NATIVE=OFF") for a in args) else " ".join(sorted(cpu_flags))
    blob = json.dumps([version, args, sys.platform, machine, cpu])
    return f"{version}-{machine}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "courseutils" / "llama-cpp"
    return Path(os.environ.get("COURSE_BUILD_CACHE", default))


class Plan:
    """Everything one build depends on, computed once."""

    def __init__(self, constraints: Path = CONSTRAINTS):
        self.version = pinned_version(constraints)
        self.cpu_flags = read_cpu_flags()
        self.switches = ggml_switches(self.cpu_flags)
        self.args = cmake_args(self.switches, os.environ.get("CMAKE_ARGS", ""))
        self.key = build_key(self.version, self.args, self.cpu_flags)
        self.dir = cache_root() / self.key

    def describe(self) -> dict:
        return {"package": PACKAGE, "version": self.version, "key": self.key, "cmake_args": self.args,
                "enabled": [n for n, on in self.switches.items() if on],
                "disabled": [n for n, on in self.switches.items() if not on], "cache": str(self.dir)}


def _run(cmd: list[str], env: dict | None = None, quiet: bool = True) -> None:
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        if quiet:
            print(out.stdout[-6000:], file=sys.stderr)
        raise SystemExit(f"error: command failed with exit code {out.returncode}: {' '.join(cmd)}")


def _marker(python: str) -> Path:
    """Where a virtualenv records which build of llama-cpp-python it holds: ``<sys.prefix>/.llama-cpp-python.json``."""
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True)
    return Path(prefix.stdout.strip()) / f".{PACKAGE}.json"


def _installed_key(python: str) -> str | None:
    """The key recorded at install time, if the installed llama-cpp-python is still that install."""
    try:
        recorded = json.loads(_marker(python).read_text())
    except (OSError, ValueError):
        return None
    probe = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('llama_cpp_python'))"],
                           capture_output=True, text=True)
    still_there = probe.returncode == 0 and probe.stdout.strip() == recorded.get("version")
    return recorded.get("key") if still_there else None


def build_wheel(plan: Plan, python: str) -> Path:
    """The cached wheel for ``plan``, building it (into a temp dir, then renamed) if missing."""
    wheels = sorted(plan.dir.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    print(f"building {PACKAGE}=={plan.version} for this CPU (about 5 minutes on 2 cores)\n"
          f"  CMAKE_ARGS={' '.join(plan.args)}", flush=True)
    plan.dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan.key}-", dir=plan.dir.parent))
    try:
        env = dict(os.environ, CMAKE_ARGS=" ".join(plan.args), FORCE_CMAKE="1")
        t0 = time.perf_counter()
        _run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
              f"{PACKAGE}=={plan.version}", "-w", str(tmp)], env=env)
        seconds = time.perf_counter() - t0
        info = dict(plan.describe(), build_seconds=round(seconds, 1), cpus=os.cpu_count(),
                    built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        plan.dir.mkdir(parents=True, exist_ok=True)
        (plan.dir / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        for wheel in tmp.glob("*.whl"):  # renamed last and atomically: a half-built wheel never appears
            os.replace(wheel, plan.dir / wheel.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"built in {seconds:.0f} s: {plan.dir}", flush=True)
    return sorted(plan.dir.glob("llama_cpp_python-*.whl"))[-1]


TOOLS = ("llama-perplexity", "llama-imatrix", "llama-quantize")


def build_tools(plan: Plan, python: str, names: list[str]) -> Path:
    """llama.cpp's own command-line tools, from the same sources and flags as the wheel.

    The sources are ``vendor/llama.cpp`` inside the llama-cpp-python sdist from PyPI, so the
    tools and the Python bindings are the same llama.cpp. Linked statically; cached in
    ``<cache>/<key>/bin`` (built into a temp dir, then renamed).
    """
    bin_dir = plan.dir / "bin"
    have = [n for n in names if (bin_dir / n).is_file()]
    names = [n for n in names if n not in have]  # build only what is missing; keep what is there
    if not names:
        return bin_dir
    if not shutil.which("cmake"):
        _run([python, "-m", "pip", "install", "--quiet", "cmake"])
    plan.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-tools-") as tmp:
        tmp = Path(tmp)
        print(f"building {', '.join(names)} from the {PACKAGE}=={plan.version} sdist (a few minutes)", flush=True)
        _run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--no-cache-dir",
              f"{PACKAGE}=={plan.version}", "-d", str(tmp)])
        sdist = next(tmp.glob("*.tar.gz"))
        shutil.unpack_archive(sdist, tmp)
        src = next(tmp.glob("llama_cpp_python-*/vendor/llama.cpp"))
        cmake = shutil.which("cmake") or str(Path(python).parent / "cmake")
        t0 = time.perf_counter()
        _run([cmake, "-S", str(src), "-B", str(tmp / "build"), "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",
              "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
              "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_OPENSSL=OFF", *plan.args])
        _run([cmake, "--build", str(tmp / "build"), "--config", "Release", "-j", str(os.cpu_count() or 2),
              "--target", *names])
        staged = tmp / "bin"
        staged.mkdir()
        for name in names:
            built = next((tmp / "build").rglob(name))
            shutil.copy2(built, staged / name)
        previous = json.loads((bin_dir / "build.json").read_text()) if (bin_dir / "build.json").is_file() else {}
        for name in previous.get("tools", []):
            if (bin_dir / name).is_file() and not (staged / name).exists():
                shutil.copy2(bin_dir / name, staged / name)  # tools built earlier from the same key
        info = {"tools": sorted(p.name for p in staged.iterdir()), "version": plan.version, "cmake_args": plan.args,
                "build_seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count()}
        (staged / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if bin_dir.exists():
            shutil.rmtree(bin_dir)
        shutil.move(str(staged), str(bin_dir))
    print(f"built in {info['build_seconds']:.0f} s: {bin_dir}", flush=True)
    return bin_dir


def cmd_tools(args) -> int:
    plan = Plan(args.constraints)
    print(build_tools(plan, args.python, args.names or list(TOOLS)))
    return 0


def cmd_flags(args) -> int:
    print(json.dumps(Plan(args.constraints).describe(), indent=2))
    return 0


def cmd_wheel(args) -> int:
    plan = Plan(args.constraints)
    if _installed_key(args.python) == plan.key and not args.force:
        print(f"{PACKAGE} {plan.version} is installed with this CPU's flags ({plan.key})")
        return 0
    wheel = build_wheel(plan, args.python)
    _run([args.python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)])
    marker = _marker(args.python)
    marker.write_text(json.dumps(plan.describe(), indent=2) + "\n")
    print(f"installed {wheel.name} ({plan.key})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring for why.")
    parser.add_argument("--constraints", type=Path, default=CONSTRAINTS,
                        help="file that pins llama-cpp-python==VERSION (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("flags", help="print this CPU's build flags, the cache key and the cache folder")
    p.set_defaults(func=cmd_flags)
    p = sub.add_parser("wheel", help="build (once per key) and install llama-cpp-python into a virtualenv")
    p.add_argument("--python", default=sys.executable, help="the virtualenv's python (default: this one)")
    p.add_argument("--force", action="store_true", help="reinstall even if the installed build has this key")
    p.set_defaults(func=cmd_wheel)
    p = sub.add_parser("tools", help="build llama.cpp's own tools (llama-perplexity, ...) once; print their folder")
    p.add_argument("names", nargs="*", metavar="TOOL", help=f"which (default: {' '.join(TOOLS)})")
    p.add_argument("--python", default=sys.executable, help="a python with pip, to fetch the sdist")
    p.set_defaults(func=cmd_tools)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
