#!/usr/bin/env python3
"""Write constraints.txt: the exact versions installed in this virtualenv (the ones CI tests).

`make constraints` runs it with .venv's Python after a `make install` that resolved fresh
versions. A pin whose release needs a newer Python than the course's floor (3.10) gets an
environment marker, so Python 3.10 users fall back to the newest release that supports it
instead of failing to install. torch is pinned without its local label (`+cpu`), so the
same line admits the CPU and the CUDA build.
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.specifiers import SpecifierSet

FLOOR = "3.10.0"
SKIP = {"courseutils", "pip", "setuptools", "wheel"}


def oldest_python(requires: str) -> str:
    """The oldest Python (3.10.0 ... 3.14.x) that satisfies a Requires-Python specifier."""
    spec = SpecifierSet(requires)
    candidates = [f"3.{minor}.{micro}" for minor in range(10, 15) for micro in range(0, 20)]
    return next((v for v in candidates if spec.contains(v)), "4")


def pins() -> list[str]:
    lines = []
    for dist in distributions():
        name = dist.metadata["Name"]
        if name.lower() in SKIP or name.lower().startswith("nvidia-"):
            continue
        version = dist.version.split("+")[0]
        requires = dist.metadata.get("Requires-Python")
        marker = ""
        if requires and not SpecifierSet(requires).contains(FLOOR):
            marker = f'; python_full_version >= "{oldest_python(requires)}"'
        lines.append(f"{name}=={version}{marker}")
    return sorted(set(lines), key=str.lower)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).resolve().parents[1] / "constraints.txt")
    args = parser.parse_args(argv)
    header = ("# Exact versions CI tests (Python 3.11). Regenerate with `make constraints` after an update;\n"
              "# pins marked python_version >= 3.11 are releases that dropped Python 3.10.\n")
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(header + "\n".join(pins()) + "\n")
    tmp.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
