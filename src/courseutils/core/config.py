"""Where things live and which device to use: the course's environment variables.

- ``COURSE_MODEL``  the default model: ``tinycode`` (shipped), a local HF directory or a hub id.
- ``COURSE_DEVICE`` ``auto`` (CUDA when torch sees one), ``cpu`` or ``cuda``.
- ``COURSE_CACHE``  where GGUF files and other artifacts go (never inside ``lessons/``).
- ``COURSE_QUIZ_FEEDBACK`` ``on`` (default) or ``off`` to hide instant quiz feedback in exams.

Nothing here runs at import time: each function reads the environment when called.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import CourseError

__all__ = ["default_model", "get_device", "cache_dir", "tinycode_dir"]

DEVICES = ("auto", "cpu", "cuda")


def default_model() -> str:
    """The model lessons load when none is given (``COURSE_MODEL``, default ``tinycode``)."""
    return os.environ.get("COURSE_MODEL", "tinycode") or "tinycode"


def get_device(device: str | None = None) -> str:
    """Resolve ``device`` (or ``COURSE_DEVICE``) to ``"cpu"`` or ``"cuda"``.

    ``auto`` picks CUDA when torch sees a GPU. Asking for ``cuda`` on a machine without
    one is an error rather than a silent fall-back, so a Colab user who forgot to enable
    the GPU finds out at once.
    """
    choice = (device or os.environ.get("COURSE_DEVICE", "auto") or "auto").lower()
    if choice not in DEVICES:
        raise CourseError(f"device={choice!r} is not one of {DEVICES}")
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise CourseError("device='cuda' was asked for, but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return choice


def cache_dir() -> Path:
    """The artifact cache (``COURSE_CACHE``, default ``~/.cache/quant-course``), created on demand."""
    path = Path(os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "quant-course").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tinycode_dir() -> Path:
    """The directory holding the shipped tinycode weights, tokenizer and model card."""
    return Path(__file__).parents[1] / "data" / "tinycode"
