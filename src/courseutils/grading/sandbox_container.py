"""Autograde untrusted notebooks with each student's kernel in a Docker or Podman container.

The same kernel as :mod:`courseutils.grading.sandbox` (bubblewrap), started by a container
engine instead, for instructors who already run one (``--sandbox docker`` or ``--sandbox
podman``). The container shows the same allow-list of the host, read-only, on an image that
holds nothing but a few symlinks (``courseutils-sandbox:empty``, imported once from a tar
built here, so no registry is needed)::

    worker (trusted, the grader's user)
      └─ launch   copies the student's autograded folder; as root, hands the copy and the
         │        connection folder to user 65534
         └─ docker|podman run --rm --network none --read-only --user 65534 --cap-drop ALL
            │     --security-opt no-new-privileges --memory M --pids-limit P
            │     -v /usr, the Python installation, the venv, courseutils (read-only)
            │     -v the submission copy (read-only), the connection folder (IPC sockets)
            │     --tmpfs home and /tmp (sized)
            └─ enter  copies the submission home, sets RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE
               └─ python -m ipykernel_launcher   (the student's code runs here)

Differences from bubblewrap: the memory limit is also the container's cgroup limit and the
process limit is the engine's pids limit (``--pids-limit``: per container; RLIMIT_NPROC would
count every process of user 65534 on the host, since a container shares the host's users).
When grading as a user other than root, the kernel runs as that user's uid, which inside the
container owns nothing but the connection folder. Containers carry a label naming the grading
run; on exit every container with that label is removed (``rm -f``), including one whose
kernel jupyter_client killed (killing the ``run`` client does not stop a container).

Podman reads its own settings (``/etc/containers/containers.conf``, or the file named by
``CONTAINERS_CONF``); on a host with hybrid cgroups (v1 and v2) its default runtime crun
refuses to start and ``runtime = "runc"`` with ``cgroup_manager = "cgroupfs"`` works
(docs/INSTRUCTORS.md). Rootless Podman maps user ids, so the grader could not reach the
kernel's sockets: grade as root, or with Docker.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ..core.errors import CourseError
from .sandbox import (ETC_FILES, HOME, SANDBOX_UID, SUBMISSION, TOPS, Limits, SandboxKernel, add_launch_parser,
                      copy_submission, give_to_sandbox_user, inner_command, kernel_env, launch_args)

__all__ = ["ENGINES", "IMAGE", "ContainerKernel", "empty_image_tar", "run_argv", "main"]

ENGINES = ("docker", "podman")
IMAGE = "courseutils-sandbox:empty"
NOFILE = 1024   # open files per process (the engine's default can exceed what a nested host allows)
NPROC = 4096    # set so the engine does not copy the host's (runc refused 65536 here); --pids-limit is the real limit


def empty_image_tar() -> bytes:
    """A tar of the image's root: the merged-/usr symlinks this host has (``/lib -> usr/lib``), nothing else."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for top in TOPS:
            if os.path.islink(top):
                info = tarfile.TarInfo(top.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(top)
                tar.addfile(info)
        for folder in ("etc", "tmp", "run", "home", "proc", "dev", "sys"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return buf.getvalue()


def _engine(engine: str) -> str:
    if engine not in ENGINES:
        raise CourseError(f"engine={engine!r}: use one of {', '.join(ENGINES)}")
    path = shutil.which(engine)
    if path is None:
        raise CourseError(f"sandbox={engine!r}: the {engine} command is not installed")
    return path


_IMAGE_READY: set[str] = set()  # engines this process has seen holding IMAGE: no second `image inspect` per student


def ensure_image(engine: str) -> None:
    """Import :data:`IMAGE` into ``engine`` once (from :func:`empty_image_tar`; no registry involved)."""
    exe = _engine(engine)
    if engine in _IMAGE_READY:
        return
    if subprocess.run([exe, "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        _IMAGE_READY.add(engine)
        return
    made = subprocess.run([exe, "import", "-", IMAGE], input=empty_image_tar(), capture_output=True, timeout=120)
    if made.returncode != 0:
        raise CourseError(f"sandbox={engine!r}: cannot create the image {IMAGE}: "
                          f"{made.stderr.decode(errors='replace').strip()[-600:]}")
    _IMAGE_READY.add(engine)


class ContainerKernel(SandboxKernel):
    """The kernelspec of a container sandbox (see the module docstring and :class:`SandboxKernel`)."""

    launcher = "courseutils.grading.sandbox_container"

    def __init__(self, root: str | os.PathLike, limits: Limits | None = None, engine: str = "docker"):
        super().__init__(root, limits)
        self.mode = engine
        self.engine = _engine(engine)

    def settings(self) -> dict:
        ensure_image(self.mode)
        uid = SANDBOX_UID if os.geteuid() == 0 else os.geteuid()
        return {"engine": self.engine, "uid": uid, "label": f"courseutils.sandbox={self.dir.name}"}

    def __exit__(self, *exc) -> None:
        if hasattr(self, "dir"):
            listed = subprocess.run([self.engine, "ps", "-aq", "--filter", f"label=courseutils.sandbox={self.dir.name}"],
                                    capture_output=True, text=True)
            ids = listed.stdout.split()
            if ids:  # kill first: "rm -f" alone would wait Podman's 10 s stop timeout on a kernel (pid 1) that ignores SIGTERM
                subprocess.run([self.engine, "kill", *ids], capture_output=True)
                subprocess.run([self.engine, "rm", "-f", *ids], capture_output=True)
        super().__exit__(*exc)


def run_argv(s: dict, submission: str, command: list[str]) -> list[str]:
    """The engine's ``run`` command for the settings ``s`` of :class:`ContainerKernel`."""
    lim, uid = s["limits"], s["uid"]
    tmpfs = f"size={lim['tmpfs_bytes']},mode=1777"  # owned by root: enter copies into it, not onto it
    argv = [s["engine"], "run", "--rm", "--label", s["label"], "--network", "none", "--read-only",
            "--user", f"{uid}:{uid}", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", str(lim["memory_bytes"]), "--memory-swap", str(lim["memory_bytes"]),
            "--pids-limit", str(lim["processes"]), "--ulimit", f"nofile={NOFILE}:{NOFILE}",
            "--ulimit", f"nproc={NPROC}:{NPROC}", "--tmpfs", f"{HOME}:{tmpfs}", "--tmpfs", f"/tmp:{tmpfs}",
            "--shm-size", str(lim["tmpfs_bytes"])]  # no --workdir: Docker then resets the home's mode
    tops = [t for t in TOPS if os.path.isdir(t) and not os.path.islink(t)]  # a host without merged /usr
    for path in ["/usr", *tops, *s["paths"], *(f for f in ETC_FILES if os.path.exists(f))]:
        argv += ["--volume", f"{path}:{path}:ro"]
    argv += ["--volume", f"{submission}:{SUBMISSION}:ro", "--volume", f"{s['runtime']}:{s['runtime']}"]
    for key, value in kernel_env(s).items():
        argv += ["--env", f"{key}={value}"]
    return argv + [IMAGE, *command]


def launch(settings: str, connection_file: str | None, probe_root: str | None = None,
           kernel_args: tuple[str, ...] = ()) -> None:
    """The kernelspec's command: start ``enter`` (then the kernel) in a container; never returns.

    Runs as the grader in nbgrader's autograded folder of this student (the kernel's cwd).
    """
    s = json.loads(Path(settings).read_text(encoding="utf-8"))
    copy = copy_submission(s)
    limits = {**s["limits"], "processes": None}  # the container's pids limit counts them
    command = inner_command(s["python"], limits, connection_file, probe_root, kernel_args)
    if os.geteuid() == 0:
        give_to_sandbox_user(s, connection_file, copy)
    sys.stdout.flush()
    os.execv(s["engine"], run_argv(s, str(copy), command))


def main(argv: list[str] | None = None) -> int:
    """``python -m courseutils.grading.sandbox_container launch``: the kernelspec's plumbing (not for people)."""
    p = argparse.ArgumentParser(prog="python -m courseutils.grading.sandbox_container",
                                description="Start a Jupyter kernel in a Docker or Podman container "
                                            "(the autograde kernelspec's command with --sandbox docker|podman).")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_launch_parser(sub, "the container engine", "ContainerKernel")
    args, extra = p.parse_known_args(argv)
    launch(*launch_args(p, args, extra))
    return 0  # not reached: launch execs


if __name__ == "__main__":
    sys.exit(main())
