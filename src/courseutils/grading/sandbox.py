"""Autograde untrusted notebooks: every student's kernel runs in its own bubblewrap sandbox.

nbgrader's trusted process (the autograde worker) reads the submission, talks to the kernel
and writes scores, the autograded notebook and the gradebook. Only the kernel, which runs
the student's code, is sandboxed. It is started through a kernelspec whose command is this
module's launcher instead of ``python -m ipykernel_launcher``::

    worker (trusted, the grader's user)
      └─ launch   copies the student's autograded folder (the kernel's cwd); as root: private
         │        bind mounts of what the kernel may see, then drops to user 65534 (nobody)
         └─ bwrap new user, pid, net, ipc, uts namespaces; an empty root with read-only
            │     binds of /usr, the Python installation, the venv, courseutils;
            │     a sized tmpfs home; the folder of the connection file (IPC sockets)
            └─ enter  copies the student's own submission into the home, sets rlimits
               └─ python -m ipykernel_launcher   (the student's code runs here)

What the kernel cannot do (``tests/test_sandbox.py`` tries each one):

- see ``quizzes/`` (solutions, hidden tests, the gradebook, other students' folders), the
  exam secret, home directories or anything else not bound above (it is not mounted);
- write anywhere but its tmpfs home and ``/tmp`` (both sized), and the connection folder
  (grading as root, a 1 MiB tmpfs; otherwise a folder on disk, files up to ``file_bytes``);
- reach the network: it has its own network namespace with only a loopback, and its
  connection to the grader uses IPC (Unix) sockets in the connection folder;
- use more than ``memory_bytes`` of address space per process (RLIMIT_AS), ``cpu_seconds``
  of CPU per process (RLIMIT_CPU), ``processes`` processes and threads (RLIMIT_NPROC, counted
  in its own user namespace), or write a file over ``file_bytes`` (RLIMIT_FSIZE).

Why the drop to user 65534 when grading as root: bubblewrap maps the sandbox's user to the
caller's, and the kernel exempts root (the real uid 0) from RLIMIT_NPROC, so a fork loop
would reach the machine. The Python installation may live where nobody cannot look (here
``/root/.pyenv``), so root first bind-mounts each path the kernel needs into a private
folder in a mount namespace of its own; bubblewrap, already running as nobody, binds those.

``docker`` and ``podman`` run the same kernel in a container instead
(:mod:`courseutils.grading.sandbox_container`); :mod:`courseutils.grading.sandbox_choice`
picks and checks the mode.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import CourseError

__all__ = ["KERNEL_NAME", "SANDBOX_UID", "Limits", "SandboxKernel", "BwrapKernel", "SandboxWarning",
           "UNPROTECTED", "main"]

KERNEL_NAME = "courseutils-sandbox"
SANDBOX_UID = 65534  # "nobody" on Debian, Ubuntu, Fedora: owns nothing
HOME = "/home/student"          # the kernel's working folder, a sized tmpfs
SUBMISSION = "/run/submission"  # the student's autograded folder, read-only, copied to HOME
RUNTIME_BYTES = 2**20           # the connection folder's tmpfs (grading as root): a JSON file and 5 sockets
# Files of /etc a Python kernel reads (dynamic linker, time zone, user names); the rest of /etc is not shown.
TOPS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr where /usr is merged
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
             "/etc/group", "/etc/nsswitch.conf", "/etc/alternatives")
UNPROTECTED = ("student code runs with your permissions: it can read quizzes/source (solutions, hidden "
               "tests) and the exam secret, change the gradebook and other students' files, use the "
               "network, and fill memory, disk or the process table")


class SandboxWarning(UserWarning):
    """Autograding runs student code without a sandbox."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed kernel (``c.SandboxLimits.<name>`` in nbgrader_config.py).

    ``memory_bytes``, ``cpu_seconds`` and ``file_bytes`` hold per process (setrlimit's
    RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE); ``processes`` counts processes and threads of the
    sandbox together (RLIMIT_NPROC in its own user namespace); ``tmpfs_bytes`` is the size of
    each writable tmpfs (the home and ``/tmp``).
    """

    memory_bytes: int = 2 * 2**30   # an idle kernel with numpy maps about 0.6 GiB
    cpu_seconds: int = 600          # above nbgrader_config.py's QuizExecute.total_timeout (300 s)
    processes: int = 64             # an idle kernel runs about 10 threads
    file_bytes: int = 64 * 2**20
    tmpfs_bytes: int = 64 * 2**20

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CourseError(f"SandboxLimits.{name}={value!r}: use a whole number >= 1")

    @classmethod
    def from_config(cls, cfg) -> "Limits":
        """The limits set as ``c.SandboxLimits.<name>`` in a traitlets config; defaults for the rest."""
        section = cfg.get("SandboxLimits", {})
        unknown = sorted(set(section) - set(cls.__dataclass_fields__))
        if unknown:
            raise CourseError(f"c.SandboxLimits.{unknown[0]}: unknown; use one of {sorted(cls.__dataclass_fields__)}")
        return cls(**dict(section))


# --------------------------------------------------------------------------- grader side
def _libc_call(name: str, *args) -> None:
    """Call a libc function (``unshare``, ``mount``, ``umount2``) that Python 3.11's os module lacks."""
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _kernel_paths(root: Path) -> list[str]:
    """Folders the kernel reads: the Python installation, the venv, and where courseutils is imported from."""
    import courseutils

    paths = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent),
             str(Path(courseutils.__file__).resolve().parents[1])}
    # keep the outermost folders: /opt/py/venv goes with /opt/py
    paths = sorted(p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths))
    root = root.resolve()
    for p in paths:
        if root == Path(p) or Path(p) in root.parents or Path(p).resolve() in root.parents:
            raise CourseError(f"the sandbox would show {p}, which holds the course root {root}; "
                              "install Python and courseutils outside the course folder")
    return [p for p in paths if p != "/usr" and not p.startswith("/usr/")]  # /usr is bound anyway


class SandboxKernel:
    """A kernelspec in a private temporary folder whose command starts the kernel in a sandbox.

    The shared half of :class:`BwrapKernel` and
    :class:`~courseutils.grading.sandbox_container.ContainerKernel` (a context manager). Per
    student: ``with BwrapKernel(root, limits) as box:``, then ``box.configure(cfg)`` sets
    nbgrader's Execute to this kernel over IPC sockets in ``box.runtime``, and ``box.env``
    (``JUPYTER_PATH``) lets jupyter_client find the kernelspec. The folder is removed on exit.
    Subclasses set :attr:`launcher` (the module whose ``launch`` command starts the kernel)
    and add their own entries to ``sandbox.json`` with :meth:`settings`.
    """

    launcher = "courseutils.grading.sandbox"
    mode = "bwrap"

    def __init__(self, root: str | os.PathLike, limits: Limits | None = None):
        self.root = Path(root)
        self.limits = limits or Limits()

    def settings(self) -> dict:
        """What the launcher needs besides the common entries (written to ``sandbox.json``)."""
        return {}

    def __enter__(self) -> "SandboxKernel":
        import courseutils

        self.dir = Path(tempfile.mkdtemp(prefix="courseutils-sandbox-"))
        os.chmod(self.dir, 0o711)  # nobody may pass through to the connection folder, not list it
        self.runtime = self.dir / "run"
        self.runtime.mkdir(mode=0o700)
        self.mounted = False
        if os.geteuid() == 0:
            # The kernel must create its sockets where the grader can reach them, so this folder is
            # writable from the sandbox; as root, a 1 MiB tmpfs keeps it from filling the disk.
            try:
                _libc_call("mount", b"tmpfs", str(self.runtime).encode(), b"tmpfs", ctypes.c_ulong(0),
                           f"size={RUNTIME_BYTES},nr_inodes=64,mode=0700".encode())
            except OSError as exc:
                self.__exit__()
                raise CourseError(f"sandbox={self.mode!r}: cannot mount the kernel's connection folder ({exc})") from exc
            self.mounted = True
        try:
            settings = {"python": sys.executable, "uid": SANDBOX_UID,
                        "paths": _kernel_paths(self.root), "runtime": str(self.runtime),
                        "stage": str(self.dir / "stage"), "limits": asdict(self.limits),
                        "pythonpath": str(Path(courseutils.__file__).resolve().parents[1]), **self.settings()}
        except BaseException:
            self.__exit__()
            raise
        (self.dir / "sandbox.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        spec = self.dir / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", self.launcher, "launch", str(self.dir / "sandbox.json"),
                     "{connection_file}"],
            "display_name": f"Python 3 (courseutils sandbox, {self.mode})", "language": "python",
            # interrupts travel as a message: a SIGINT to the sandbox's process group would not reach the kernel
            "interrupt_mode": "message"}, indent=1), encoding="utf-8")
        return self

    @property
    def env(self) -> dict[str, str]:
        return {"JUPYTER_PATH": str(self.dir)}

    def configure(self, cfg) -> None:
        """Point nbgrader's Execute at the sandboxed kernel, connected over IPC sockets in ``self.runtime``."""
        cfg.Execute.kernel_name = KERNEL_NAME  # whatever kernel the student's notebook names
        cfg.KernelManager.transport = "ipc"
        cfg.KernelManager.connection_file = str(self.runtime / "kernel.json")

    def __exit__(self, *exc) -> None:
        if getattr(self, "mounted", False):
            _libc_call("umount2", str(self.runtime).encode(), 2)  # MNT_DETACH: even if something still holds it
        shutil.rmtree(self.dir, ignore_errors=True)

    def probe(self) -> str | None:
        """Why this sandbox cannot run a kernel here, or ``None`` when it can (call inside ``with``).

        Starts the launcher once with a probe instead of a kernel: it must import ipykernel and
        courseutils inside the sandbox and must not see the course root.
        """
        import subprocess

        try:
            probe = subprocess.run([sys.executable, "-m", self.launcher, "launch", str(self.dir / "sandbox.json"),
                                    "--probe", str(self.root.resolve())],
                                   capture_output=True, text=True, timeout=120, cwd=self.dir)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if probe.returncode != 0 or probe.stdout.strip() != "sandbox ok":
            return (f"a test run of the sandbox failed (exit {probe.returncode}): "
                    f"{(probe.stderr or probe.stdout).strip()[-800:]}")
        return None


class BwrapKernel(SandboxKernel):
    """The kernelspec of a bubblewrap sandbox (see the module docstring and :class:`SandboxKernel`)."""

    def __init__(self, root: str | os.PathLike, limits: Limits | None = None, bwrap: str | None = None):
        super().__init__(root, limits)
        self.bwrap = bwrap or shutil.which("bwrap")
        if self.bwrap is None:
            raise CourseError("sandbox='bwrap': the bwrap command is not installed (Debian/Ubuntu: apt-get install bubblewrap)")

    def settings(self) -> dict:
        return {"bwrap": self.bwrap}


# --------------------------------------------------------------------------- launcher (outside bwrap)
def _stage(binds: list[tuple[str, str]], stage: Path) -> list[tuple[str, str]]:
    """Root only: bind each source into ``stage/<i>`` inside a private mount namespace of this process.

    After the drop to nobody, bubblewrap must open its sources itself, and nobody may not be
    allowed to pass through their parent folders (``/root``). The mounts vanish with this process.
    """
    CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x20000, 4096, 16384, 1 << 18
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None)  # nothing leaks to the host
    stage.mkdir(mode=0o755)
    staged = []
    for i, (src, dest) in enumerate(binds):
        target = stage / str(i)
        if os.path.isdir(src):
            target.mkdir()
        else:
            target.touch()
        _libc_call("mount", src.encode(), str(target).encode(), None, ctypes.c_ulong(MS_BIND | MS_REC), None)
        staged.append((str(target), dest))
    return staged


def copy_submission(s: dict) -> Path:
    """The grader's copy of the kernel's cwd (nbgrader's autograded folder of this student), which the
    sandbox sees read-only at ``/run/submission``."""
    copy = Path(s["runtime"]).parent / "submission"
    shutil.copytree(os.getcwd(), copy, symlinks=True)
    return copy


def give_to_sandbox_user(s: dict, connection_file: str | None, copy: Path) -> None:
    """Root only: hand the connection folder, the connection file and the submission copy to the
    sandbox's user, who creates the kernel's sockets there and reads the copy."""
    for path in [s["runtime"], *([connection_file] if connection_file else []), copy, *copy.rglob("*")]:
        os.chown(path, s["uid"], s["uid"], follow_symlinks=False)


def _bwrap_argv(s: dict, ro: list[tuple[str, str]], rw: list[tuple[str, str]], command: list[str]) -> list[str]:
    uid, size = str(s["uid"]), str(s["limits"]["tmpfs_bytes"])
    argv = [s["bwrap"], "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--uid", uid, "--gid", uid,
            "--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", HOME, "--chdir", HOME]
    for top in TOPS:  # merged /usr: symlinks into /usr
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
    for src, dest in ro:
        argv += ["--ro-bind", src, dest]
    for src, dest in rw:
        argv += ["--bind", src, dest]
    argv += ["--remount-ro", "/", "--clearenv"]
    for key, value in kernel_env(s).items():
        argv += ["--setenv", key, value]
    return argv + ["--", *command]


def kernel_env(s: dict) -> dict[str, str]:
    """The kernel's whole environment (nothing of the grader's is passed on), for the settings ``s``."""
    return {"PATH": f"{Path(s['python']).parent}:/usr/bin:/bin", "HOME": HOME, "LANG": "C.UTF-8",
            "PYTHONPATH": s["pythonpath"], "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            # the kernel's parent is the sandbox's pid 1: no parent polling, no "ipython kernel" banner
            "JPY_PARENT_PID": "1"}


def inner_command(python: str, limits: dict, connection_file: str | None, probe_root: str | None = None,
                  kernel_args: tuple[str, ...] = ()) -> list[str]:
    """What runs inside the sandbox: :func:`enter`, then the kernel (or, without a connection file,
    the probe that checks the imports and that ``probe_root`` is hidden)."""
    enter = [python, "-m", "courseutils.grading.sandbox", "enter", json.dumps(limits), "--"]
    if connection_file is None:
        check = (f"import ipykernel, numpy, courseutils.grading.quiz, os\n"
                 f"print('sandbox sees the course root' if os.path.exists({probe_root!r}) else 'sandbox ok')")
        return enter + [python, "-c", check]
    return enter + [python, "-m", "ipykernel_launcher", "-f", connection_file, "--HistoryManager.hist_file=:memory:",
                    *kernel_args]


def add_launch_parser(sub, what: str, settings_by: str) -> None:
    """The ``launch`` command's arguments (this module's and the container launcher's)."""
    la = sub.add_parser("launch", help=f"set up and exec {what}")
    la.add_argument("settings", help=f"sandbox.json written by {settings_by}")
    la.add_argument("connection_file", nargs="?", help="the kernel's connection file")
    la.add_argument("--probe", metavar="ROOT", help="instead of a kernel, check imports and that ROOT is hidden")


def launch_args(p: argparse.ArgumentParser, args, extra: list[str]) -> tuple:
    """``launch``'s arguments after the checks: a connection file or ``--probe``, and only kernel
    configuration (``--Class.trait=value``) among the extra arguments that go on to the kernel."""
    if (args.connection_file is None) == (args.probe is None):
        p.error("launch takes a connection file or --probe ROOT")
    bad = [a for a in extra if not re.fullmatch(r"--[A-Za-z_]\w*\.[A-Za-z_]\w*=\S*", a)]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)}")
    return args.settings, args.connection_file, args.probe, tuple(extra)


def launch(settings: str, connection_file: str | None, probe_root: str | None = None,
           kernel_args: tuple[str, ...] = ()) -> None:
    """The kernelspec's command: start ``enter`` (then the kernel) in bubblewrap; never returns.

    ``kernel_args``: traitlets options for the kernel (``--IPKernelApp.log_level=ERROR``, which
    nbgrader appends from ``c.Execute.extra_arguments``), passed on to ``ipykernel_launcher``.

    Runs as the grader in nbgrader's autograded folder of this student (the kernel's cwd);
    a copy of it is what the sandbox sees, read-only, at ``/run/submission``.
    """
    s = json.loads(Path(settings).read_text(encoding="utf-8"))
    ro = [(p, p) for p in ["/usr", *s["paths"], *(f for f in ETC_FILES if os.path.exists(f))]]
    copy = copy_submission(s)
    ro.append((str(copy), SUBMISSION))
    rw = [(s["runtime"], s["runtime"])]
    command = inner_command(s["python"], s["limits"], connection_file, probe_root, kernel_args)
    if os.geteuid() == 0:
        n_ro = len(ro)
        staged = _stage(ro + rw, Path(s["stage"]))
        ro, rw = staged[:n_ro], staged[n_ro:]
        give_to_sandbox_user(s, connection_file, copy)
        os.setgroups([])
        os.setgid(s["uid"])
        os.setuid(s["uid"])  # from here on nothing of root's is reachable
    argv = _bwrap_argv(s, ro, rw, command)
    sys.stdout.flush()
    os.execv(s["bwrap"], argv)


# --------------------------------------------------------------------------- inside bwrap
def enter(limits: dict, command: list[str]) -> None:
    """Inside the sandbox, before any student code: copy the submission home, set the rlimits, exec ``command``.

    RLIMIT_NPROC is set here, inside the sandbox's user namespace, so it counts this
    sandbox's processes alone (set outside, it would count every process of user 65534,
    other students' kernels included).
    """
    import resource

    for entry in Path(SUBMISSION).iterdir():  # the entries, not the folder: a container's home is root's
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, Path(HOME) / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, Path(HOME) / entry.name, follow_symlinks=False)
    for rlimit, value in ((resource.RLIMIT_AS, limits["memory_bytes"]), (resource.RLIMIT_NPROC, limits["processes"]),
                          (resource.RLIMIT_FSIZE, limits["file_bytes"]), (resource.RLIMIT_CORE, 0)):
        if value is not None:  # a container counts its processes itself (its pids limit): "processes" is None
            resource.setrlimit(rlimit, (value, value))
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))  # SIGXCPU at the soft limit, SIGKILL 5 s later
    os.chdir(HOME)
    os.execv(command[0], command)


def main(argv: list[str] | None = None) -> int:
    """``python -m courseutils.grading.sandbox launch|enter``: the kernelspec's plumbing (not for people)."""
    p = argparse.ArgumentParser(prog="python -m courseutils.grading.sandbox",
                                description="Start a Jupyter kernel in a bubblewrap sandbox (the autograde kernelspec's command).")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_launch_parser(sub, "bwrap (outside the sandbox)", "BwrapKernel")
    en = sub.add_parser("enter", help="inside the sandbox: copy the submission, set rlimits, exec the kernel")
    en.add_argument("limits", help="JSON of Limits")
    en.add_argument("command", nargs=argparse.REMAINDER, help="-- then the kernel command")
    args, extra = p.parse_known_args(argv)
    if args.cmd == "launch":
        launch(*launch_args(p, args, extra))
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    enter(json.loads(args.limits), command)
    return 0  # not reached: launch and enter exec


if __name__ == "__main__":
    sys.exit(main())
