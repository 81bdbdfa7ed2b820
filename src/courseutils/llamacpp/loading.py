"""How llama.cpp loads a model on this CPU: with its extra buffer types, or safely without.

llama.cpp can move quantized weights into "extra buffer types" at load time: repacked
layouts for faster CPU kernels and, on CPUs with AMX, AMX tile buffers. The AMX path
segfaults on the first matrix product of any quantized type (llama.cpp issue 20824), which
kills a Jupyter kernel outright. Loading with ``use_extra_bufts = False`` avoids it.

- :func:`decide_load_mode` is the decision, a pure function of the CPU's flags and
  llama.cpp's system info (unit-tested for AMX and non-AMX machines);
- :func:`load_mode` applies it to this machine; ``python -m courseutils info`` prints it;
- :func:`model_params` hands the choice to ``llama_cpp.Llama``, which has no argument for it.

The other half of the fix is the build: ``tools/build_llama_cpp.py`` compiles
llama-cpp-python without AMX and for this CPU only (README, Troubleshooting).
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CourseError

__all__ = ["EXTRA_BUFTS_ENV", "LoadMode", "cpu_flags", "system_info", "decide_load_mode", "load_mode",
           "model_params", "llama_cpp_version"]

EXTRA_BUFTS_ENV = "COURSE_LLAMA_EXTRA_BUFTS"


@dataclass(frozen=True)
class LoadMode:
    """How :class:`LlamaCpp` loads weights: with llama.cpp's extra buffer types or without, and why."""

    use_extra_bufts: bool
    reason: str

    @property
    def name(self) -> str:
        return "default (extra buffer types on)" if self.use_extra_bufts else "safe (extra buffer types off)"


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    found = re.search(r"^(flags|Features)\s*:(.*)$", text, re.M)
    return frozenset(found.group(2).split()) if found else frozenset()


def system_info() -> str:
    """llama.cpp's own report of its build and CPU (``llama_print_system_info``)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def decide_load_mode(flags: frozenset[str] | set[str], info: str, override: str | None = None) -> LoadMode:
    """Pick the load mode from the CPU's flags and llama.cpp's system info.

    Extra buffer types are turned off when the CPU has AMX (``amx_int8`` or ``amx_tile`` in
    /proc/cpuinfo) or llama.cpp reports ``AMX_INT8 = 1``. Both are checked: a build made
    without AMX code does not report it, but a wheel built elsewhere might contain it, so
    the CPU's own flags decide. ``override`` (the ``COURSE_LLAMA_EXTRA_BUFTS`` variable)
    forces the choice: ``0``/``off`` or ``1``/``on``.
    """
    if override is not None and override.strip() != "":
        value = override.strip().lower()
        if value in ("0", "off", "false", "no"):
            return LoadMode(False, f"{EXTRA_BUFTS_ENV}={override} turns llama.cpp's extra buffer types off")
        if value in ("1", "on", "true", "yes"):
            return LoadMode(True, f"{EXTRA_BUFTS_ENV}={override} turns llama.cpp's extra buffer types on")
        raise CourseError(f"{EXTRA_BUFTS_ENV}={override!r} is not understood; use 0/off or 1/on (or leave it unset)")
    cpu_amx = sorted({"amx_int8", "amx_tile"} & set(flags))
    reported_amx = re.search(r"\bAMX_INT8\s*=\s*1\b", info) is not None
    if cpu_amx or reported_amx:
        why = (f"this CPU has AMX ({', '.join(cpu_amx)} in /proc/cpuinfo)" if cpu_amx
               else "llama.cpp reports AMX_INT8 = 1")
        return LoadMode(False, f"{why}: llama.cpp's AMX weight buffers crash on quantized matrix products "
                               "(llama.cpp issue 20824), so weights load without extra buffer types "
                               "(no AMX, no CPU repacking)")
    return LoadMode(True, "no AMX on this CPU: llama.cpp's extra buffer types (weight repacking) are safe")


def load_mode() -> LoadMode:
    """The load mode on this machine (see :func:`decide_load_mode`)."""
    return decide_load_mode(cpu_flags(), system_info(), os.environ.get(EXTRA_BUFTS_ENV))


_PARAMS_LOCK = threading.Lock()


@contextlib.contextmanager
def model_params(use_extra_bufts: bool):
    """Make ``llama_cpp.Llama`` start from model params with ``use_extra_bufts`` set.

    ``Llama()`` takes no argument for it; it builds its params from
    ``llama_model_default_params()`` and loads the model in the same call. So, for the
    duration of that call only, the default it starts from is replaced.
    """
    import llama_cpp.llama_cpp as lib

    default = lib.llama_model_default_params
    if "use_extra_bufts" not in {name for name, _ in lib.llama_model_params._fields_}:
        if use_extra_bufts:
            yield
            return
        raise CourseError(f"llama-cpp-python {llama_cpp_version()} cannot turn off "
                          "llama.cpp's extra buffer types (no use_extra_bufts); install the version in "
                          "constraints.txt with `make install`")

    def patched():
        params = default()
        params.use_extra_bufts = use_extra_bufts
        return params

    with _PARAMS_LOCK:
        lib.llama_model_default_params = patched
        try:
            yield
        finally:
            lib.llama_model_default_params = default


def llama_cpp_version() -> str:
    import llama_cpp

    return str(llama_cpp.__version__)
