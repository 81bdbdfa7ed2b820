#!/usr/bin/env python3
"""Install the course on Google Colab: llama-cpp-python for this runtime, then the package.

The install cell of every lesson and quiz (written by ``tools/colab_cells.py``) clones the
repository into ``/content`` and runs this file, in the notebook's own process so that its
progress shows in the cell. Standard library only: nothing else is installed yet.

1. **llama-cpp-python**, at the version ``constraints.txt`` pins (``make install`` installs the same one):

   - *GPU runtime* (``nvidia-smi`` answers): the CUDA wheel that llama-cpp-python publishes for
     that version, from its own index ``https://abetlen.github.io/llama-cpp-python/whl/cuXYZ``,
     where ``cuXYZ`` is the newest published CUDA version that is not newer than the runtime's
     toolkit (``nvcc``) and has the same major version (Colab's CUDA 12.5 -> ``cu125``). Its
     import is checked and it must report GPU offload. Estimated 1-2 minutes (a download).
     When that version has no such wheel (or it does not load), it is compiled like the CPU
     build, with ``-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=<this GPU>`` added: estimated
     15-30 minutes on Colab's 2 vCPUs.
   - *CPU runtime*: compiled by ``tools/build_llama_cpp.py``, exactly as ``make install`` does
     (this CPU's instruction sets, AMX off: that file says why), about 5 minutes on 2 cores.

2. **The course package** from the clone, without extras (Colab brings Jupyter).

3. It prints which llama.cpp backend it got (``python -m courseutils info`` says it too).

Run a second time in the same runtime (another notebook), it finds both installed and takes
seconds. ``--dry-run`` prints what it would do and installs nothing. The install cell calls
``main([])`` (``runpy.run_path(...)["main"]([])``): the kernel's own ``sys.argv`` is not ours.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
WHEEL_INDEX = "https://abetlen.github.io/llama-cpp-python/whl/{tag}"
# The CUDA versions llama-cpp-python builds wheels for (its .github/workflows/build-wheels-cuda.yaml
# and README, 0.3.x releases): a release tag vX.Y.Z-cuXYZ, indexed at WHEEL_INDEX.
PUBLISHED_CUDA = ((11, 8), (12, 1), (12, 2), (12, 3), (12, 4), (12, 5), (13, 0), (13, 2))
NVCC = ("nvcc", "/usr/local/cuda/bin/nvcc")


def _load_build_tool():
    """tools/build_llama_cpp.py as a module (tools/ is not a package and is not on sys.path)."""
    spec = importlib.util.spec_from_file_location("build_llama_cpp", ROOT / "tools" / "build_llama_cpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


blc = _load_build_tool()


def gpu_arch() -> str | None:
    """The GPU's compute capability without the dot (``"75"`` on a T4), or None without a GPU."""
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                         capture_output=True, text=True)
    match = re.match(r"\s*(\d+)\.(\d+)", out.stdout or "")
    return f"{match.group(1)}{match.group(2)}" if out.returncode == 0 and match else None


def cuda_version() -> tuple[int, int] | None:
    """The CUDA toolkit's version (``nvcc --version``), else the driver's (``nvidia-smi``)."""
    nvcc = shutil.which(NVCC[0]) or (NVCC[1] if Path(NVCC[1]).is_file() else None)
    for cmd, pattern in (([nvcc, "--version"], r"release (\d+)\.(\d+)"), (["nvidia-smi"], r"CUDA Version:\s*(\d+)\.(\d+)")):
        if cmd[0] is None:
            continue
        out = subprocess.run(cmd, capture_output=True, text=True)
        match = re.search(pattern, out.stdout or "") if out.returncode == 0 else None
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def wheel_tag(cuda: tuple[int, int] | None) -> str | None:
    """The published wheel index for a CUDA version: same major, newest not above it (``cu125``)."""
    usable = [v for v in PUBLISHED_CUDA if cuda and v[0] == cuda[0] and v <= cuda]
    return f"cu{usable[-1][0]}{usable[-1][1]}" if usable else None


def prebuilt_command(python: str, version: str, tag: str) -> list[str]:
    """pip command for the CUDA wheel; ``--only-binary``: never fall back to compiling PyPI's sdist for the CPU."""
    return [python, "-m", "pip", "install", "--quiet", "--only-binary", blc.PACKAGE,
            "--extra-index-url", WHEEL_INDEX.format(tag=tag), f"{blc.PACKAGE}=={version}"]


def course_command(python: str) -> list[str]:
    """pip command for the course package from this clone, without extras."""
    return [python, "-m", "pip", "install", "--quiet", str(ROOT)]


def backend(python: str) -> str | None:
    """``"CUDA"`` or ``"CPU"``: what the installed llama-cpp-python offloads to; None if it does not load."""
    out = subprocess.run([python, "-c", "import llama_cpp; print(llama_cpp.llama_supports_gpu_offload())"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"llama_cpp does not load:\n{(out.stderr or '')[-2000:]}", flush=True)
        return None
    words = (out.stdout or "").split()
    return {"True": "CUDA", "False": "CPU"}.get(words[-1] if words else "")


@contextmanager
def cmake_args(extra: str, cudacxx: str | None = None):
    """``CMAKE_ARGS`` (and ``CUDACXX``) for tools/build_llama_cpp.py, which adds them after the course's
    CPU flags; the notebook's environment is restored afterwards."""
    values = {"CMAKE_ARGS": extra, **({"CUDACXX": cudacxx} if cudacxx else {})}
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build_from_source(python: str, extra: str, cudacxx: str | None = None) -> None:
    """tools/build_llama_cpp.py ``wheel``: the course's flags plus ``extra``; skipped when already installed."""
    with cmake_args(extra, cudacxx):
        blc.main(["--constraints", str(CONSTRAINTS), "wheel", "--python", python])


def install_llama_cpp(python: str, dry_run: bool = False) -> None:
    version = blc.pinned_version(CONSTRAINTS)
    arch = gpu_arch()
    if arch is None:
        print(f"CPU runtime (no GPU): {blc.PACKAGE}=={version} compiled with the course's flags", flush=True)
        if dry_run:
            with cmake_args(""):
                print("would run: tools/build_llama_cpp.py wheel, CMAKE_ARGS:", " ".join(blc.Plan(CONSTRAINTS).args))
        else:
            build_from_source(python, "")
        return
    cuda = cuda_version()
    tag = wheel_tag(cuda)
    cuda_args = f"-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES={arch}"
    with cmake_args(cuda_args):
        source_key = blc.Plan(CONSTRAINTS).key
    prebuilt_key = f"{version}-{tag}-prebuilt"
    print(f"GPU runtime: compute capability {arch}, CUDA {'.'.join(map(str, cuda)) if cuda else 'unknown'}", flush=True)
    if dry_run:
        print("would run:", " ".join(prebuilt_command(python, version, tag)) if tag else "(no published CUDA wheel)")
        with cmake_args(cuda_args):
            print("else: tools/build_llama_cpp.py wheel, CMAKE_ARGS:", " ".join(blc.Plan(CONSTRAINTS).args))
        return
    if blc._installed_key(python) in (prebuilt_key, source_key):
        print(f"{blc.PACKAGE} {version} for CUDA is already installed", flush=True)
        return
    if tag:
        print(f"installing the prebuilt CUDA wheel of {blc.PACKAGE}=={version} ({tag}; a minute or two)", flush=True)
        got = subprocess.run(prebuilt_command(python, version, tag), capture_output=True, text=True)
        if got.returncode == 0 and backend(python) == "CUDA":
            blc._marker(python).write_text(json.dumps({"key": prebuilt_key, "version": version, "index": tag}) + "\n")
            return
        print(f"no usable prebuilt wheel for {version} ({tag}): {(got.stderr or '').strip()[-300:]}", flush=True)
    print(f"compiling {blc.PACKAGE}=={version} for CUDA (estimated 15-30 minutes on 2 vCPUs)", flush=True)
    # CMake's CUDA compiler, when /usr/local/cuda/bin is not on PATH
    cudacxx = NVCC[1] if not shutil.which("nvcc") and not os.environ.get("CUDACXX") and Path(NVCC[1]).is_file() else None
    build_from_source(python, cuda_args, cudacxx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="The module docstring says more.")
    parser.add_argument("--dry-run", action="store_true", help="print what would be installed; install nothing")
    parser.add_argument("--python", default=sys.executable, help="the Python to install into (default: this one)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    install_llama_cpp(args.python, args.dry_run)
    if args.dry_run:
        print("would run:", " ".join(course_command(args.python)))
        return 0
    print("installing the course package (a minute)", flush=True)
    blc._run(course_command(args.python))
    got = backend(args.python)
    print(f"done in {time.perf_counter() - t0:.0f} s; llama.cpp backend: {got}", flush=True)
    if got is None:
        raise SystemExit("error: llama-cpp-python was installed but does not load (see above)")
    if got == "CPU" and gpu_arch() is not None:
        print("warning: this runtime has a GPU but llama.cpp runs on the CPU; torch still uses the GPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
