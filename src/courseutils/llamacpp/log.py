"""llama.cpp's own log, kept so that errors can quote it.

llama.cpp reports what it does and why it fails through one log callback
(``llama_log_set``, which also sets ggml's). llama-cpp-python installs its own callback
(``llama_cpp/_logger.py``) that prints to ``sys.stderr`` when its ``llama-cpp-python``
logger allows. :func:`install_log_tap` puts a tap in front of whatever callback is set:

- the tap appends every fragment to a bounded buffer of recent text (:func:`recent_log`)
  and to every open :func:`captured_log` block,
- then forwards the fragment unchanged to the callback it replaced, so what is printed,
  and at which verbosity, stays llama-cpp-python's decision.

The tap is installed once per process, lazily (the first :func:`captured_log` or
:func:`recent_log`), and installing again is a no-op. :func:`log_tail` formats the last
lines of a log for an error message; the bridge (:mod:`courseutils.llamacpp.bridge`) uses
it when a quantize, load, logits or generate call fails.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import sys
import threading
from collections.abc import Iterator

__all__ = ["install_log_tap", "captured_log", "CapturedLog", "recent_log", "log_tail", "RECENT_LOG_CHARS"]

#: How much recent log text the tap keeps (characters, oldest dropped first).
RECENT_LOG_CHARS = 64_000


class CapturedLog:
    """The llama.cpp log text produced inside a :func:`captured_log` block (``.text``)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def tail(self, n_lines: int = 12) -> str:
        """The last ``n_lines`` non-empty lines (see :func:`log_tail`)."""
        return log_tail(self.text, n_lines)


class _Tap:
    """Process-wide tap state: the recent-text ring, the open captures, the callback it forwards to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recent: collections.deque[str] = collections.deque()
        self.recent_chars = 0
        self.captures: list[CapturedLog] = []
        self.callback = None   # our ctypes thunk; must stay referenced while llama.cpp holds it
        self.forward = None    # the callback we replaced (a ctypes function), or None for "stderr"

    def record(self, text: str) -> None:
        with self.lock:
            self.recent.append(text)
            self.recent_chars += len(text)
            while self.recent_chars > RECENT_LOG_CHARS and len(self.recent) > 1:
                self.recent_chars -= len(self.recent.popleft())
            for cap in self.captures:
                cap._parts.append(text)


_TAP = _Tap()
_INSTALL_LOCK = threading.Lock()


def install_log_tap() -> None:
    """Install the tap in front of llama.cpp's current log callback (once per process).

    The callback it replaces is read with ``llama_log_get``; after llama-cpp-python has been
    imported that is its ``_logger.llama_log_callback``. Calling this again does nothing.
    """
    with _INSTALL_LOCK:
        if _TAP.callback is not None:
            return
        import llama_cpp

        prev = llama_cpp.llama_log_callback()
        user_data = ctypes.c_void_p()
        llama_cpp.llama_log_get(ctypes.byref(prev), ctypes.byref(user_data))
        forward = prev if ctypes.cast(prev, ctypes.c_void_p).value else None
        forward_data = user_data.value

        @llama_cpp.llama_log_callback
        def tap(level: int, text: bytes, data) -> None:
            # an exception cannot cross the C boundary: ctypes would print and drop it
            try:
                _TAP.record(text.decode("utf-8", errors="replace") if text else "")
            except Exception:  # noqa: BLE001  (keep llama.cpp running whatever happens here)
                pass
            if forward is not None:
                forward(level, text, forward_data)
            elif text:  # llama.cpp's own default when no callback is set: print to stderr
                sys.stderr.write(text.decode("utf-8", errors="replace"))

        _TAP.forward = forward
        _TAP.callback = tap
        llama_cpp.llama_log_set(tap, None)


@contextlib.contextmanager
def captured_log() -> Iterator[CapturedLog]:
    """Collect the llama.cpp log text produced while the block runs.

    >>> with captured_log() as log:
    ...     llm = LlamaCpp(path)           # doctest: +SKIP
    >>> "model buffer size" in log.text    # doctest: +SKIP
    True

    The text is also available while the block runs, and after it (``log.text``).
    Blocks may nest; each sees everything logged while it is open.
    """
    install_log_tap()
    cap = CapturedLog()
    with _TAP.lock:
        _TAP.captures.append(cap)
    try:
        yield cap
    finally:
        with _TAP.lock:
            _TAP.captures.remove(cap)


def recent_log(n_lines: int | None = None) -> str:
    """The most recent llama.cpp log text the tap kept (at most :data:`RECENT_LOG_CHARS`
    characters), or its last ``n_lines`` lines. Installs the tap if needed (so the first
    call returns ``""``)."""
    install_log_tap()
    with _TAP.lock:
        text = "".join(_TAP.recent)
    return text if n_lines is None else "\n".join(text.splitlines()[-n_lines:])


def log_tail(text: str, n_lines: int = 12) -> str:
    """The last ``n_lines`` non-empty lines of a log, indented for an error message.

    llama.cpp also logs progress dots (``.....``) while loading; lines of dots are skipped.
    """
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip() and ln.strip(". ")]
    if not lines:
        return "    (llama.cpp logged nothing)"
    return "\n".join(f"    {ln}" for ln in lines[-n_lines:])
