"""Writing files so that nobody ever sees half of one: a temporary name, then a rename.

Every file the course writes (GGUF exports and quantizations, quiz keys and student
copies, scorecards, grades, caches, a retrained model) goes through :func:`atomic_path`::

    with atomic_path(out) as tmp:   # tmp: a fresh name beside out, in the same directory
        writer(tmp)                 # anything that takes a path: gguf-py, llama.cpp, nbgrader ...
    # now out is the complete new file. Had the block raised, out would be untouched
    # (old contents or still absent) and tmp removed.

The rename is ``os.replace``, atomic on POSIX and Windows because both names share a
directory, hence a file system. A reader, a second process or a crash in the middle
therefore sees the old file or the new one, never a truncated one under the real name
(which a later run would mistake for a finished GGUF or key).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from .errors import CourseError

__all__ = ["atomic_path", "check_output_path"]


def check_output_path(out: str | os.PathLike, param: str = "out", directory: bool = False) -> Path:
    """``out`` as a :class:`~pathlib.Path`, once it is known to be writable there.

    Raises :class:`~courseutils.core.errors.CourseError` naming ``param`` when the parent
    directory does not exist, or when ``out`` is a directory (a file, if ``directory``).
    Callers use it to fail before an expensive computation whose result goes to ``out``.
    """
    final = Path(out)
    if not final.parent.is_dir():
        raise CourseError(f"{param}={str(final)!r}: the directory {str(final.parent)!r} does not exist")
    if directory and final.exists() and not final.is_dir():
        raise CourseError(f"{param}={str(final)!r} is a file; give a directory path")
    if not directory and final.is_dir():
        raise CourseError(f"{param}={str(final)!r} is a directory; give a file path")
    return final


@contextlib.contextmanager
def atomic_path(out: str | os.PathLike, param: str = "out", *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; on success it replaces ``out``, on error it is removed.

    Args:
        out: the file (or, with ``directory=True``, the directory) to write.
        param: the caller's name for ``out``, used in error messages.
        directory: ``tmp`` is an empty directory, created here, that the block fills; it
            then replaces the directory ``out`` as a whole. (Two renames: an old ``out`` is
            moved aside first and deleted after, so the swap is not atomic, but ``out`` is
            never a half-filled directory.)

    Yields:
        ``tmp``, a fresh hidden name in ``out``'s directory (``.NAME.PID-RANDOM.partial``).
        The block writes there; nothing else is created until it finishes.

    Raises:
        CourseError: from :func:`check_output_path`, before the block runs.
    """
    final = check_output_path(out, param, directory)
    tmp = final.with_name(f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory:
            _replace_directory(tmp, final)
        else:
            os.replace(tmp, final)
    finally:
        _remove(tmp)


def _replace_directory(tmp: Path, final: Path) -> None:
    """Put the directory ``tmp`` in the place of ``final`` (which may exist)."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = tmp.with_suffix(".old")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)  # put the previous version back
        raise
    _remove(old)


def _remove(path: Path) -> None:
    """Delete ``path`` (a file or a directory tree) if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
