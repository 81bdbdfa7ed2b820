"""Which sandbox autograde runs each student's kernel in: ``--sandbox auto|off|bwrap|docker|podman``.

``auto`` (the default) is bubblewrap (:mod:`courseutils.grading.sandbox`) where a test run of
it works, otherwise no sandbox with a :class:`~courseutils.grading.sandbox.SandboxWarning`
that says what is not protected. ``bwrap``, ``docker`` and ``podman``
(:mod:`courseutils.grading.sandbox_container`) insist: where a test run fails, grading stops
with the reason. ``off`` grades unprotected, with the warning.
"""
from __future__ import annotations

import os
import subprocess
import warnings

from ..core.errors import CourseError
from .sandbox import UNPROTECTED, BwrapKernel, Limits, SandboxKernel, SandboxWarning
from .sandbox_container import ContainerKernel

__all__ = ["MODES", "resolve", "problem", "sandbox_kernel"]

MODES = ("auto", "off", "bwrap", "docker", "podman")


def resolve(mode: str, root: str | os.PathLike, limits: Limits | None = None) -> str:
    """The sandbox autograde uses: ``"bwrap"``, ``"docker"``, ``"podman"`` or ``"off"``.

    ``auto`` is ``bwrap`` where it works, otherwise ``off`` with a :class:`SandboxWarning`
    naming what is not protected. ``bwrap``, ``docker`` or ``podman`` where it does not work
    raises :class:`CourseError` with the reason (a test run of the sandbox is made first).
    """
    if mode not in MODES:
        raise CourseError(f"sandbox={mode!r}: use one of {', '.join(MODES)}")
    if mode == "off":
        warnings.warn(f"autograde --sandbox off: {UNPROTECTED}", SandboxWarning, stacklevel=2)
        return "off"
    wanted = "bwrap" if mode == "auto" else mode
    found = problem(wanted, root, limits)
    if found is None:
        return wanted
    if mode != "auto":
        raise CourseError(f"sandbox={mode!r} cannot run here: {found}")
    warnings.warn(f"autograde without a sandbox ({found}): {UNPROTECTED}. Install bubblewrap "
                  "(apt-get install bubblewrap) or see docs/INSTRUCTORS.md", SandboxWarning, stacklevel=2)
    return "off"


def problem(mode: str, root: str | os.PathLike, limits: Limits | None = None) -> str | None:
    """Why the ``mode`` sandbox (``bwrap``, ``docker``, ``podman``) cannot run a kernel here, or
    ``None`` when it can: one test run of its launcher (:meth:`SandboxKernel.probe`, about a second)."""
    try:
        with sandbox_kernel(mode, root, limits) as box:
            return box.probe()
    except (CourseError, OSError, subprocess.SubprocessError) as exc:
        return str(exc)


def sandbox_kernel(mode: str, root: str | os.PathLike, limits: Limits | None = None) -> SandboxKernel | None:
    """The kernelspec context manager of a resolved ``mode`` (``None`` for ``"off"``)."""
    if mode == "off":
        return None
    if mode == "bwrap":
        return BwrapKernel(root, limits)
    if mode in ("docker", "podman"):
        return ContainerKernel(root, limits, engine=mode)
    raise CourseError(f"sandbox={mode!r}: use one of off, bwrap, docker, podman (resolve 'auto' first)")
