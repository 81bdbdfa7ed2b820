"""The layers of courseutils point one way, and no two modules import each other (issue 15).

Every module of the package is parsed with ``ast``; every import statement counts, also
one inside a function (lazy) or under ``if TYPE_CHECKING``, relative (``from ..ggml
import blocks``) or absolute (``import courseutils.ggml.blocks``). A module's layer is
its folder, ``courseutils/<layer>/...``, or for a file directly in ``courseutils/`` its
entry in ``courseutils.TOP_LEVEL``; ``courseutils.LAYERS`` gives the order, low to high.
Checked:

- every module has a layer (a new file or folder must be placed in one);
- every ``courseutils`` import names a module or package that exists;
- no module imports from a layer above its own;
- the module graph has no cycle.

The first tests run :func:`layer_problems` on the real package; the last ones run it on
small made-up packages, so a checker that stopped finding problems would fail too.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import courseutils

PACKAGE = Path(courseutils.__file__).resolve().parent


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_names(pkg_dir: Path, name: str = "courseutils") -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``pkg_dir``."""
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(pkg_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([name, *parts])] = path
    return out


def layer_of(module: str, layers: tuple[str, ...], top_level: dict[str, str]) -> str | None:
    """The layer of a dotted module name; ``None`` when it has none."""
    parts = module.split(".")[1:]
    if not parts:
        return top_level.get("__init__")
    if len(parts) == 1 and not (parts[0] in layers and parts[0] != "top"):
        return top_level.get(parts[0])
    return parts[0] if parts[0] in layers and parts[0] != "top" else None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(module: str, path: Path, known: dict[str, Path], root: str) -> tuple[list[Edge], list[str]]:
    """The package-internal imports of one module, and problems (unknown targets)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    edges, problems = [], []

    def add(target: str, line: int) -> None:
        if target in known:
            edges.append(Edge(module, target, path, line))
        else:
            problems.append(f"{path}:{line}: {module} imports {target}, which is not a module of {root}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == root or alias.name.startswith(root + "."):
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 >= len(base_parts):
                    problems.append(f"{path}:{node.lineno}: relative import beyond the top of {root}")
                    continue
                base = ".".join(base_parts[:len(base_parts) - (node.level - 1)])
                if node.module:
                    base += "." + node.module
            elif node.module and (node.module == root or node.module.startswith(root + ".")):
                base = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, node.lineno)
    return edges, problems


def _find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as a list of edges) per strongly connected component that has one (Tarjan)."""
    graph: dict[str, list[Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e)
        graph.setdefault(e.target, [])
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def connect(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in graph[v]:
            if e.target not in index:
                connect(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in on_stack:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for comp in components:
        start = min(comp)
        if len(comp) == 1 and not any(e.target == start for e in graph[start]):
            continue
        # breadth-first from start back to start, inside the component: a shortest cycle
        came: dict[str, Edge] = {}
        frontier, closing = [start], None
        while frontier and closing is None:
            nxt = []
            for v in frontier:
                for e in graph[v]:
                    if e.target == start:
                        closing = e
                        break
                    if e.target in comp and e.target not in came:
                        came[e.target] = e
                        nxt.append(e.target)
                if closing:
                    break
            frontier = nxt
        path, v = [closing], closing.source
        while v != start:
            path.append(came[v])
            v = came[v].source
        cycles.append(path[::-1])
    return cycles


def layer_problems(pkg_dir: Path, layers: tuple[str, ...], top_level: dict[str, str],
                   root: str = "courseutils") -> list[str]:
    """Every violation of the layering rules in the package at ``pkg_dir``, one line each."""
    known = module_names(pkg_dir, root)
    problems, edges = [], []
    for module, path in known.items():
        if layer_of(module, layers, top_level) is None:
            problems.append(f"{path}: {module} belongs to no layer; put it in one of the folders "
                            f"{[l for l in layers if l != 'top']} or list it in {root}.TOP_LEVEL")
        found, unknown = imports_of(module, path, known, root)
        edges += found
        problems += unknown
    rank = {name: i for i, name in enumerate(layers)}
    for e in edges:
        src, dst = layer_of(e.source, layers, top_level), layer_of(e.target, layers, top_level)
        if src is not None and dst is not None and rank[dst] > rank[src]:
            problems.append(f"{e.where()}: {e.source} (layer {src}) imports {e.target} (layer {dst}, higher); "
                            f"layers, low to high: {', '.join(layers)}")
    for cycle in _find_cycles(edges):
        chain = " -> ".join([cycle[0].source] + [e.target for e in cycle])
        problems.append(f"import cycle {chain} (" + "; ".join(f"{e.where()}" for e in cycle) + ")")
    return problems


# --------------------------------------------------------------------------- the real package
def test_layers_are_declared_once_in_order():
    assert courseutils.LAYERS[0] == "core" and courseutils.LAYERS[-1] == "top"
    assert len(set(courseutils.LAYERS)) == len(courseutils.LAYERS)
    assert set(courseutils.TOP_LEVEL.values()) <= set(courseutils.LAYERS)
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(courseutils.LAYERS) - {"top"}, "one subpackage per layer, and no other"


def test_courseutils_imports_follow_the_layers_without_cycles():
    problems = layer_problems(PACKAGE, courseutils.LAYERS, courseutils.TOP_LEVEL)
    assert not problems, "\n".join(problems)


def test_every_subpackage_says_what_it_holds_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert doc.startswith(f"Layer {init.parent.name}:"), f"{init}: docstring should start 'Layer {init.parent.name}:'"
        below = courseutils.LAYERS[:courseutils.LAYERS.index(init.parent.name)]
        allowed = f"May import: {', '.join(below) or 'nothing'}"
        assert allowed in " ".join(doc.split()), f"{init}: the docstring should say '{allowed}'"
        for module in sorted(init.parent.glob("[!_]*.py")):
            assert f"``{module.stem}``" in doc, f"{init}: the docstring does not mention {module.stem}"


# --------------------------------------------------------------------------- the checker itself
LAYERS = ("core", "math", "plots", "top")
TOP = {"__init__": "core", "cli": "top"}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    for rel, code in {"__init__.py": "", "core/__init__.py": "", "math/__init__.py": "",
                      "plots/__init__.py": "", **files}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(textwrap.dedent(code))
    return pkg


def test_checker_accepts_a_clean_package(tmp_path):
    pkg = _package(tmp_path, {
        "core/errors.py": "",
        "math/a.py": "from ..core import errors\nfrom ..core.errors import *\nimport pkg.core.errors\n",
        "math/b.py": "from . import a\n",
        "plots/p.py": "def f():\n    from ..math.b import x\n",
        "cli.py": "from .plots import p\nfrom pkg.math import a, b\n",
    })
    assert layer_problems(pkg, LAYERS, TOP, root="pkg") == []


@pytest.mark.parametrize("code, line", [
    ("def f():\n    from ..plots import p\n", 2),          # lazy, relative
    ("import os\nimport pkg.plots.p\n", 2),              # absolute
    ("from pkg.plots.p import draw\n", 1),               # absolute from-import
    ("from pkg import cli\n", 1),                        # the top layer
])
def test_checker_names_file_and_line_of_an_upward_import(tmp_path, code, line):
    pkg = _package(tmp_path, {"math/a.py": code, "plots/p.py": "", "cli.py": ""})
    problems = layer_problems(pkg, LAYERS, TOP, root="pkg")
    assert len(problems) == 1 and f"math/a.py:{line}: pkg.math.a (layer math) imports" in problems[0], problems


def test_checker_finds_a_cycle_through_lazy_imports(tmp_path):
    pkg = _package(tmp_path, {
        "math/a.py": "from . import b\n",
        "math/b.py": "import os\n\n\ndef f():\n    from .c import g\n",
        "math/c.py": "from .a import h\n",
    })
    problems = layer_problems(pkg, LAYERS, TOP, root="pkg")
    assert len(problems) == 1 and problems[0].startswith("import cycle pkg.math.a -> pkg.math.b -> pkg.math.c -> pkg.math.a")
    assert "b.py:5" in problems[0], problems


def test_checker_refuses_modules_without_a_layer_and_unknown_imports(tmp_path):
    pkg = _package(tmp_path, {"extra.py": "", "misc/__init__.py": "", "misc/util.py": "",
                              "math/a.py": "from ..core.nothere import x\n"})
    problems = "\n".join(layer_problems(pkg, LAYERS, TOP, root="pkg"))
    for text in ("pkg.extra belongs to no layer", "pkg.misc belongs to no layer", "pkg.misc.util belongs to no layer",
                 "pkg.math.a imports pkg.core.nothere, which is not a module"):
        assert text in problems
