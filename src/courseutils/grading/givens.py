"""Exam-mode givens: the numbers a quiz's computations start from, in one locked cell (issue 17).

A quiz that supports exam mode has one code cell with ``grade_id: "givens"`` (nbgrader
read-only: ``locked: true``, neither solution nor grade) that only assigns literals::

    n_params = 70e9      # weights of the model
    bpw = 4.83           # bits per weight of the mix

and its ``"quiz"`` metadata may say how an exam draws new values:
``{"kind": "givens", "draw": {"bpw": [4.5, 5.5, 0.01]}}`` (low, high, step: the value is
``low + k * step`` for a ``k`` drawn from the secret).

Every hidden test that depends on a given starts its hidden region with the marker line
``# @givens``. At release (:class:`courseutils.grading.nbgrader_plugins.InstantiateGivens`)
the marker becomes ``_givens = {"bpw": 4.83, ...}``, so the hidden test, which nbgrader
stores in its gradebook at release and restores at autograde, carries its own copy and
recomputes the expected answer from ``_givens["bpw"]``, never from the notebook's ``bpw``.
A student who reassigns a given in an answer cell changes nothing the grader uses.

Without a secret (self-study release) the givens stay as written in the source and the
release behaves as before; a quiz without a givens cell is released unchanged. Tools that
run the instructor notebook itself (``keys``, ``audit``) first give its marked tests the
source's givens with :func:`with_givens`, exactly as a self-study release would.
"""
from __future__ import annotations

import ast
import hashlib
import math
from typing import Any, Mapping

from ..core.errors import CourseError

__all__ = ["GIVENS_ID", "MARKER", "parse_givens", "givens_source", "draw_givens", "inject_givens", "find_givens",
           "with_givens", "read_secret"]

GIVENS_ID = "givens"
MARKER = "# @givens"


def parse_givens(source: str, where: str = "givens cell") -> dict[str, Any]:
    """``{name: value}`` of a givens cell: one ``name = <literal>`` per statement, nothing else."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise CourseError(f"{where}: does not parse ({exc})") from exc
    values: dict[str, Any] = {}
    for node in tree.body:
        ok = isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        try:
            value = ast.literal_eval(node.value) if ok else None
        except ValueError:
            ok = False
        if not ok:
            raise CourseError(f"{where}: line {node.lineno} must be `name = <literal>` "
                              f"(a number, string, tuple or list of them)")
        values[node.targets[0].id] = value
    return values


def givens_source(values: Mapping[str, Any], comments: Mapping[str, str] | None = None) -> str:
    """The source of a givens cell assigning ``values`` in order (with optional comments)."""
    comments = comments or {}
    lines = []
    for name, value in values.items():
        line = f"{name} = {value!r}"
        lines.append(f"{line}  # {comments[name]}" if comments.get(name) else line)
    return "\n".join(lines) + "\n"


def _uniform(secret: str, *labels: str) -> float:
    """A number in [0, 1) determined by the secret and the labels (SHA-256, no global RNG)."""
    digest = hashlib.sha256("\x1f".join((secret,) + labels).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def draw_givens(values: Mapping[str, Any], draw: Mapping[str, Any], secret: str, quiz: str) -> dict[str, Any]:
    """New givens for an exam variant: each name in ``draw`` gets ``low + k*step``, ``k`` from the secret.

    ``draw[name] = [low, high, step]``; names not in ``draw`` keep their value. The same
    secret always gives the same values; a different quiz id gives different ones.
    """
    out = dict(values)
    for name, spec in draw.items():
        if name not in values:
            raise CourseError(f"{quiz}: draw names {name!r}, which the givens cell does not assign; "
                              f"allowed: {sorted(values)}")
        if not (isinstance(spec, (list, tuple)) and len(spec) == 3 and spec[2] > 0 and spec[1] >= spec[0]):
            raise CourseError(f"{quiz}: draw[{name!r}] = {spec!r}; give [low, high, step] with step > 0")
        low, high, step = spec
        n = int(math.floor((high - low) / step + 1e-9)) + 1
        k = min(int(_uniform(secret, quiz, name) * n), n - 1)
        value = low + k * step
        if all(isinstance(v, int) for v in spec):
            out[name] = int(value)
        else:
            digits = max(0, -math.floor(math.log10(step))) + 2 if step < 1 else 6
            out[name] = round(float(value), digits)
    return out


def inject_givens(test_source: str, values: Mapping[str, Any]) -> str:
    """A test cell with every ``# @givens`` marker line replaced by ``_givens = {...}`` (same indent)."""
    out = []
    for line in test_source.split("\n"):
        if line.strip() == MARKER:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}_givens = {dict(values)!r}")
        else:
            out.append(line)
    return "\n".join(out)


def _grade_id(cell) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")


def find_givens(nb, quiz: str = "quiz") -> tuple[Any, dict[str, Any], list]:
    """``(givens cell or None, its values, the test cells marked '# @givens')`` of a quiz notebook.

    Raises :class:`CourseError` when a test is marked but there is no givens cell, when there
    are several, or when the givens cell is not read-only (locked, neither grade nor solution).
    """
    cells = [c for c in nb["cells"] if _grade_id(c) == GIVENS_ID]
    marked = [c for c in nb["cells"] if c["cell_type"] == "code"
              and c.get("metadata", {}).get("nbgrader", {}).get("grade")
              and any(line.strip() == MARKER for line in c["source"].split("\n"))]
    if not cells:
        if marked:
            raise CourseError(f"{quiz}: a test cell has '{MARKER}' but there is no givens cell (grade_id '{GIVENS_ID}')")
        return None, {}, []
    if len(cells) > 1:
        raise CourseError(f"{quiz}: {len(cells)} givens cells; a quiz has one")
    nbg = cells[0].get("metadata", {}).get("nbgrader", {})
    if not nbg.get("locked") or nbg.get("grade") or nbg.get("solution"):
        raise CourseError(f"{quiz}: the givens cell must be read-only (locked, neither grade nor solution)")
    return cells[0], parse_givens(cells[0]["source"], f"{quiz} givens cell"), marked


def with_givens(nb, quiz: str = "quiz"):
    """A copy of ``nb`` whose marked tests carry the source's givens (what a self-study release runs)."""
    import copy

    out = copy.deepcopy(nb)
    _, values, marked = find_givens(out, quiz)
    for c in marked:
        c["source"] = inject_givens(c["source"], values)
    return out


def read_secret(path: str) -> str:
    """The exam secret from a file (never from the command line, where `ps` and shell history show it)."""
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise CourseError(f"secret_file={path!r} cannot be read ({exc})") from exc
    if len(secret) < 8:
        raise CourseError(f"secret_file={path!r} holds {len(secret)} characters; use at least 8")
    return secret
