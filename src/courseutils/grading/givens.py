"""Exam-mode givens: the numbers a quiz's computations start from, in one locked cell (issue 17).

A quiz that supports exam mode has one code cell with ``grade_id: "givens"`` (nbgrader
read-only: ``locked: true``, neither solution nor grade) that only assigns literals::

    n_params = 70e9      # weights of the model
    bpw = 4.83           # bits per weight of the mix

and its ``"quiz"`` metadata says how an exam draws new values:
``{"kind": "givens", "draw": {"bpw": [4.5, 5.5, 0.01]}}`` (low, high, step: the value is
``low + k * step`` for a ``k`` drawn from the secret; lists, ``"distinct"`` lists and one
little-endian field of a hex string are drawn too, see :func:`draw_givens`).

Every hidden test that depends on a given starts its hidden region with the marker line
``# @givens``. At release (:class:`courseutils.grading.nbgrader_plugins.InstantiateGivens`)
the marker becomes ``_givens = {"bpw": 4.83, ...}``, so the hidden test, which nbgrader
stores in its gradebook at release and restores at autograde, carries its own copy and
recomputes the expected answer from ``_givens["bpw"]``, never from the notebook's ``bpw``.
A student who reassigns a given in an answer cell changes nothing the grader uses.

Without a secret (self-study release) the givens stay as written in the source and the
release behaves as before; a quiz without a givens cell is released unchanged. The keys and
the audit execute the source with its own givens (:func:`with_source_givens`). Exam
variants (:mod:`courseutils.grading.exam`) draw one set of givens per secret
(:func:`read_secrets`: one per line of a file) and rewrite the givens cell
(:func:`rewrite_givens`), which the release then copies into the hidden tests.
"""
from __future__ import annotations

import ast
import hashlib
import math
from typing import Any, Mapping

from ..core.errors import CourseError

__all__ = ["GIVENS_ID", "MARKER", "parse_givens", "givens_source", "draw_givens", "rewrite_givens", "inject_givens",
           "givens_cell", "with_source_givens", "read_secret", "read_secrets"]

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


def _grid(spec: Any, where: str) -> tuple[list, bool]:
    """The values ``low, low + step, ..., <= high`` of a ``[low, high, step]`` spec (ints stay ints).

    A fourth entry ``"distinct"`` asks for distinct values across the elements of a list given.
    """
    ok = (isinstance(spec, (list, tuple)) and len(spec) in (3, 4)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec[:3])
          and spec[2] > 0 and spec[1] >= spec[0] and (len(spec) == 3 or spec[3] == "distinct"))
    if not ok:
        raise CourseError(f"{where} = {spec!r}; give [low, high, step] with step > 0 "
                          f"(optionally a fourth entry 'distinct' for a list)")
    low, high, step = spec[:3]
    n = int(math.floor((high - low) / step + 1e-9)) + 1
    if all(isinstance(v, int) for v in spec[:3]):
        return [low + k * step for k in range(n)], len(spec) == 4
    digits = max(0, -math.floor(math.log10(step))) + 2 if step < 1 else 6
    return [round(float(low + k * step), digits) for k in range(n)], len(spec) == 4


def _draw_value(value: Any, spec: Any, secret: str, labels: tuple[str, ...], where: str) -> Any:
    """One given drawn anew: a number, or every number of a (nested) list/tuple, on the spec's grid.

    For a list, ``spec`` is either one ``[low, high, step(, "distinct")]`` used for every
    element, or a list of specs, one per element. With ``"distinct"`` the elements of one
    list get distinct values (drawn one after the other, skipping values already used).
    """
    if isinstance(value, str) and isinstance(spec, dict):
        return _draw_hex_field(value, spec, secret, labels, where)
    if isinstance(value, (list, tuple)):
        per_element = isinstance(spec, (list, tuple)) and len(spec) == len(value) and all(
            isinstance(s, (list, tuple)) for s in spec)
        if per_element:
            out = [_draw_value(v, s, secret, labels + (str(i),), f"{where}[{i}]")
                   for i, (v, s) in enumerate(zip(value, spec))]
        elif all(isinstance(v, (list, tuple)) for v in value):       # a matrix: one spec for every entry
            out = [_draw_value(v, spec, secret, labels + (str(i),), f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            grid, distinct = _grid(spec, where)
            if distinct and len(grid) < len(value):
                raise CourseError(f"{where}: {len(value)} distinct values asked from a grid of {len(grid)}")
            out, used = [], set()
            for i in range(len(value)):
                k = min(int(_uniform(secret, *labels, str(i)) * len(grid)), len(grid) - 1)
                while distinct and k in used:
                    k = (k + 1) % len(grid)
                used.add(k)
                out.append(grid[k])
        return type(value)(out)
    grid, _ = _grid(spec, where)
    return grid[min(int(_uniform(secret, *labels) * len(grid)), len(grid) - 1)]


def _draw_hex_field(value: str, spec: Mapping[str, Any], secret: str, labels: tuple[str, ...], where: str) -> str:
    """A hex string given (``"47 47 55 46 ..."``) with one little-endian integer field drawn anew.

    ``spec = {"le": [offset, size], "value": [low, high, step]}``: bytes ``offset .. offset+size-1``
    get the drawn integer, least significant byte first (as GGUF stores it).
    """
    try:
        data = bytearray(bytes.fromhex(value))
        offset, size = spec["le"]
        number = _draw_value(0, spec["value"], secret, labels, where)
        data[offset:offset + size] = int(number).to_bytes(size, "little")
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CourseError(f"{where} = {spec!r}: for a hex string give {{'le': [offset, size], "
                          f"'value': [low, high, step]}} with integers that fit ({exc})") from exc
    return " ".join(f"{b:02x}" for b in data)


def draw_givens(values: Mapping[str, Any], draw: Mapping[str, Any], secret: str, quiz: str) -> dict[str, Any]:
    """New givens for an exam variant: each name in ``draw`` gets ``low + k*step``, ``k`` from the secret.

    ``draw[name] = [low, high, step]``; for a list given, every element is drawn on that grid
    (``[low, high, step, "distinct"]``: all different) or ``draw[name]`` lists one spec per
    element. Names not in ``draw`` keep their value. The same secret always gives the same
    values; a different quiz id gives different ones.
    """
    out = dict(values)
    for name, spec in draw.items():
        if name not in values:
            raise CourseError(f"{quiz}: draw names {name!r}, which the givens cell does not assign; "
                              f"allowed: {sorted(values)}")
        out[name] = _draw_value(values[name], spec, secret, (quiz, name), f"{quiz}: draw[{name!r}]")
    return out


def rewrite_givens(source: str, values: Mapping[str, Any]) -> str:
    """The givens cell ``source`` with each assigned literal replaced by ``values[name]``.

    Comments and layout stay; an int written in hex (``0x3A``) is written in hex again.
    """
    tree = ast.parse(source)
    lines = source.split("\n")
    for node in reversed(tree.body):          # from the bottom, so earlier offsets stay valid
        name = node.targets[0].id
        if name not in values or node.value.lineno != node.value.end_lineno:
            continue
        row = node.value.lineno - 1
        line = lines[row].encode("utf-8")
        start, end = node.value.col_offset, node.value.end_col_offset
        old = line[start:end].decode("utf-8")
        value = values[name]
        text = f"0x{value:02X}" if isinstance(value, int) and old.lower().startswith("0x") else repr(value)
        rest = line[end:].decode("utf-8")
        if rest.lstrip().startswith("#"):        # keep the comment in its column (at least two spaces away)
            column = len(line[:end].decode("utf-8")) + len(rest) - len(rest.lstrip())
            width = len(line[:start].decode("utf-8")) + len(text)
            rest = " " * max(2, column - width) + rest.lstrip()
        lines[row] = line[:start].decode("utf-8") + text + rest
    return "\n".join(lines)


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


def read_secrets(path: str) -> list[str]:
    """The exam secrets of a file, one per line (blank lines and lines starting with ``#`` skipped).

    Each secret gives one exam variant. Read from a file, never from the command line.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise CourseError(f"secret_file={path!r} cannot be read ({exc})") from exc
    secrets = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not secrets:
        raise CourseError(f"secret_file={path!r} holds no secret; write one per line")
    for n, secret in enumerate(secrets, 1):
        if len(secret) < 8:
            raise CourseError(f"secret_file={path!r}: secret {n} has {len(secret)} characters; use at least 8")
    if len(set(secrets)) != len(secrets):
        raise CourseError(f"secret_file={path!r} repeats a secret; each line must differ")
    return secrets


def givens_cell(nb) -> Any:
    """The notebook's givens cell (``grade_id == "givens"``), or ``None``; more than one is an error."""
    cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == GIVENS_ID]
    if len(cells) > 1:
        raise CourseError(f"{len(cells)} givens cells; a quiz has one")
    return cells[0] if cells else None


def with_source_givens(nb) -> Any:
    """A copy of ``nb`` whose marked hidden tests hold the givens cell's values (as a release writes them).

    Used to execute an instructor notebook as it will be graded (keys, audit); ``nb`` is unchanged.
    """
    import copy

    out = copy.deepcopy(nb)
    cell = givens_cell(out)
    if cell is None:
        return out
    values = parse_givens(cell.source)
    for c in out.cells:
        if c.cell_type == "code" and MARKER in c.source:
            c.source = inject_givens(c.source, values)
    return out
