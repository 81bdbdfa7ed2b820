"""The Colab path: the badge and install cell of every notebook (tools/colab_cells.py) and what the
install cell runs on a CPU and a GPU runtime (tools/colab_install.py). Fast: nothing is installed,
subprocess.run is replaced by a recorder that answers like nvidia-smi, nvcc and pip would."""
from __future__ import annotations

import importlib.util
import json
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLONE = "/content/quantization-from-first-principles"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cells = _load("colab_cells")
installer = _load("colab_install")
V = installer.blc.pinned_version(ROOT / "constraints.txt")  # the llama-cpp-python version the course pins


# --------------------------------------------------------------------------- badge and install cell in sync
def test_every_lesson_and_quiz_has_the_current_badge_and_install_cell():
    stale = [str(p.relative_to(ROOT)) for p in cells.out_of_date(ROOT)]
    assert not stale, f"run `python tools/colab_cells.py` (then `make quiz-keys` for quizzes): {stale}"


def test_the_url_comes_from_pyproject_only():
    url = cells.repository_url(ROOT)
    assert url == "https://github.com/quant-course/quantization-from-first-principles"
    code = cells.install_cell(url)
    assert f'url = "{url}"' in code and f'repo = "{CLONE}"' in code and max(map(len, code.splitlines())) <= 100
    assert code.count("\n") < 10, "keep the install cell short enough to read"
    lesson = json.loads((ROOT / "lessons" / "00_setup_and_tour.ipynb").read_text())
    assert "".join(lesson["cells"][1]["source"]) == code


def _title_without_badge(cell):
    return cells.BADGE_RE.sub("", "".join(cell["source"])).replace("\n\n\n\n", "\n\n")


@pytest.fixture
def course_copy(tmp_path):
    """A small course checkout: pyproject with a fork's URL, a lesson, a quiz source, an old-style lesson."""
    fork = "https://github.com/someone/qffp-fork"
    text = (ROOT / "pyproject.toml").read_text().replace(cells.repository_url(ROOT), fork)
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "lessons").mkdir()
    shutil.copy(ROOT / "lessons" / "08_mixed_precision.ipynb", tmp_path / "lessons")
    quiz = tmp_path / "quizzes" / "source" / "08_mixed_precision"
    quiz.mkdir(parents=True)
    shutil.copy(ROOT / "quizzes" / "source" / "08_mixed_precision" / "08_mixed_precision.ipynb", quiz)
    # a lesson as a helper might write it: no badge, no install cell
    nb = json.loads((ROOT / "lessons" / "07_awq.ipynb").read_text())
    nb["cells"][0]["source"] = cells._lines(cells.BADGE_RE.sub("", "".join(nb["cells"][0]["source"]))
                                            .replace("\n\n\n\n", "\n\n"))
    del nb["cells"][1]
    (tmp_path / "lessons" / "09_new.ipynb").write_text(cells.dumps(nb))
    # a lesson copied from lesson 08 before this tool existed: 08's badge and the old pip-only install cell
    nb = json.loads((ROOT / "lessons" / "08_mixed_precision.ipynb").read_text())
    nb["cells"][1]["source"] = cells._lines(OLD_INSTALL_CELL)
    (tmp_path / "lessons" / "10_copy.ipynb").write_text(cells.dumps(nb))
    return tmp_path, fork


OLD_INSTALL_CELL = """import sys, subprocess
if "google.colab" in sys.modules:  # Colab: install the course package first (about 5 minutes)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "courseutils @ git+https://github.com/quant-course/quantization-from-first-principles"], check=True)"""


def test_the_tool_writes_badges_and_install_cells_and_touches_nothing_else(course_copy, capsys):
    root, fork = course_copy
    before = {p: json.loads(p.read_text()) for p in root.rglob("*.ipynb")}
    assert cells.main(["--root", str(root), "--check"]) == 1
    assert {p.name for p in root.rglob("*.ipynb")} == {p.name for p in before}  # --check wrote nothing
    assert all(json.loads(p.read_text()) == nb for p, nb in before.items())
    assert cells.main(["--root", str(root)]) == 0
    assert "make quiz-keys" in capsys.readouterr().out
    for path, old in before.items():
        new = json.loads(path.read_text())
        target = (f"quizzes/student/{path.parent.name}/{path.name}" if "quizzes" in path.parts
                  else f"lessons/{path.name}")
        title = "".join(new["cells"][0]["source"])
        assert cells.badge(fork, target) in title and "quant-course" not in title
        assert title.count("colab-badge.svg") == 1
        assert title.splitlines()[0] == "".join(old["cells"][0]["source"]).splitlines()[0]
        assert _title_without_badge(new["cells"][0]) == _title_without_badge(old["cells"][0])
        assert "".join(new["cells"][1]["source"]) == cells.install_cell(fork)
        assert new["cells"][1]["cell_type"] == "code" and new["cells"][1]["outputs"] == []
        skip = 1 if path.name == "09_new.ipynb" else 2  # the new lesson had no install cell to replace
        assert new["cells"][2:] == old["cells"][skip:], "a cell other than the badge and install cell changed"
        assert {k: v for k, v in new.items() if k != "cells"} == {k: v for k, v in old.items() if k != "cells"}
    inserted = json.loads((root / "lessons" / "09_new.ipynb").read_text())["cells"][1]
    assert len(inserted["id"]) == 8
    # a second run changes nothing, and the check passes; no temporary files are left behind
    snapshot = {p: p.read_bytes() for p in root.rglob("*.ipynb")}
    assert cells.main(["--root", str(root)]) == 0
    assert {p: p.read_bytes() for p in root.rglob("*.ipynb")} == snapshot
    assert cells.main(["--root", str(root), "--check"]) == 0
    assert not [p for p in root.rglob(".*") if p.is_file()]


def test_the_tool_refuses_a_notebook_without_a_title_cell(course_copy):
    root, _ = course_copy
    path = root / "lessons" / "08_mixed_precision.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][0]["cell_type"] = "code"
    path.write_text(cells.dumps(nb))
    with pytest.raises(SystemExit, match="first cell must be the markdown title"):
        cells.main(["--root", str(root)])


def test_a_repository_url_that_colab_cannot_open_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "https://gitlab.com/a/b"\n')
    with pytest.raises(SystemExit, match="Repository"):
        cells.repository_url(tmp_path)


# --------------------------------------------------------------------------- what the install cell runs
class Recorder:
    """Stands in for subprocess.run: records each command and answers like the real tools would."""

    def __init__(self, prefix: Path, *, gpu: str | None, nvcc: str = "", prebuilt_rc: int = 0):
        self.calls: list[tuple[list[str], dict]] = []
        self.prefix, self.gpu, self.nvcc, self.prebuilt_rc = prefix, gpu, nvcc, prebuilt_rc
        self.built = self.installed = None   # which llama-cpp-python build was compiled / is "installed"

    def __call__(self, cmd, *args, **kw):
        cmd = [str(c) for c in cmd]
        self.calls.append((cmd, kw))
        out, rc = "", 0
        if cmd[0] == "nvidia-smi":
            out = f"{self.gpu}\n" if "--query-gpu=compute_cap" in cmd else "| NVIDIA-SMI 550.54  CUDA Version: 12.4 |"
        elif cmd[0].endswith("nvcc"):
            out = self.nvcc
        elif cmd[1:3] == ["-c", "import sys; print(sys.prefix)"]:
            out = str(self.prefix)
        elif cmd[1] == "-c" and "m.version" in cmd[2]:
            rc, out = (0, V) if self.installed else (1, "")
        elif cmd[1] == "-c" and "llama_supports_gpu_offload" in cmd[2]:
            out = str(self.installed == "cuda")
        elif cmd[1:4] == ["-m", "pip", "wheel"]:
            wheel_dir = Path(cmd[cmd.index("-w") + 1])
            self.built = "cuda" if "GGML_CUDA=on" in kw.get("env", {}).get("CMAKE_ARGS", "") else "cpu"
            (wheel_dir / f"llama_cpp_python-{V}-py3-none-linux_x86_64.whl").write_bytes(b"")
        elif cmd[1:4] == ["-m", "pip", "install"] and "--extra-index-url" in cmd:
            rc = self.prebuilt_rc
            self.installed = "cuda" if rc == 0 else self.installed
        elif cmd[1:4] == ["-m", "pip", "install"] and cmd[-1].endswith(".whl"):
            self.installed = self.built
        if kw.get("check") and rc:
            raise subprocess.CalledProcessError(rc, cmd)
        return subprocess.CompletedProcess(cmd, rc, stdout=out, stderr="" if rc == 0 else "no matching distribution")

    def pip(self):
        return [(c, kw) for c, kw in self.calls if c[1:3] == ["-m", "pip"]]


def _run_cell(monkeypatch, recorder: Recorder | None, *, colab: bool, which: dict[str, str]):
    """exec the install cell of lesson 00 as Colab would, with this machine's tools replaced."""
    code = "".join(json.loads((ROOT / "lessons" / "00_setup_and_tour.ipynb").read_text())["cells"][1]["source"])
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", recorder if recorder is not None else _forbidden)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: which.get(name))
    real_run_path = runpy.run_path
    clone_file = f"{CLONE}/tools/colab_install.py"
    monkeypatch.setattr(runpy, "run_path", lambda path, *a, **k: real_run_path(
        str(ROOT / "tools" / "colab_install.py") if path == clone_file else path, *a, **k))
    exec(compile(code, "install-cell", "exec"), {"__name__": "__main__"})


def _forbidden(*args, **kw):
    raise AssertionError(f"the install cell ran {args} outside Colab")


@pytest.fixture
def colab_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_BUILD_CACHE", str(tmp_path / "build-cache"))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    monkeypatch.delenv("CUDACXX", raising=False)
    return tmp_path


def _course_flags(extra: str = "") -> str:
    blc = installer.blc
    return " ".join(blc.cmake_args(blc.ggml_switches(blc.read_cpu_flags()), extra))


PY = sys.executable
COURSE = [PY, "-m", "pip", "install", "--quiet", str(ROOT)]
WHEEL = [PY, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir", "--no-binary", "llama-cpp-python",
         f"llama-cpp-python=={V}", "-w"]


def test_outside_colab_the_install_cell_runs_nothing(monkeypatch):
    _run_cell(monkeypatch, None, colab=False, which={})


def test_on_a_cpu_runtime_llama_cpp_is_compiled_with_the_course_flags(monkeypatch, colab_env, capsys):
    rec = Recorder(colab_env, gpu=None)
    _run_cell(monkeypatch, rec, colab=True, which={})
    assert rec.calls[0][0] == ["git", "clone", "--quiet", "--depth=1", cells.repository_url(ROOT), CLONE]
    pip = rec.pip()
    assert [c[:len(WHEEL)] for c, _ in pip[:1]] == [WHEEL]
    assert pip[0][1]["env"]["CMAKE_ARGS"] == _course_flags() and "-DGGML_AMX_INT8=OFF" in _course_flags()
    assert pip[1][0][:7] == [PY, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall"]
    assert [c for c, _ in pip[2:]] == [COURSE], "then the course, without extras, and nothing else"
    assert "CMAKE_ARGS" not in os.environ, "the kernel's environment is left as it was"
    assert "llama.cpp backend: CPU" in capsys.readouterr().out


def test_on_a_gpu_runtime_the_prebuilt_cuda_wheel_is_installed(monkeypatch, colab_env, capsys):
    rec = Recorder(colab_env, gpu="7.5", nvcc="Cuda compilation tools, release 12.5, V12.5.82")
    which = {"nvidia-smi": "/usr/bin/nvidia-smi", "nvcc": "/usr/local/cuda/bin/nvcc"}
    _run_cell(monkeypatch, rec, colab=True, which=which)
    assert [c for c, _ in rec.pip()] == [
        [PY, "-m", "pip", "install", "--quiet", "--only-binary", "llama-cpp-python", "--extra-index-url",
         "https://abetlen.github.io/llama-cpp-python/whl/cu125", f"llama-cpp-python=={V}"], COURSE]
    assert "llama.cpp backend: CUDA" in capsys.readouterr().out
    marker = json.loads((colab_env / ".llama-cpp-python.json").read_text())
    assert marker["key"] == f"{V}-cu125-prebuilt"
    # another notebook in the same runtime: llama-cpp-python is there already, only the course is reinstalled
    rec.calls.clear()
    _run_cell(monkeypatch, rec, colab=True, which=which)
    assert [c for c, _ in rec.pip()] == [COURSE]


def test_without_a_prebuilt_wheel_it_is_compiled_for_this_gpu(monkeypatch, colab_env, capsys):
    rec = Recorder(colab_env, gpu="8.0", prebuilt_rc=1)  # no nvcc on PATH: the driver's CUDA 12.4
    _run_cell(monkeypatch, rec, colab=True, which={"nvidia-smi": "/usr/bin/nvidia-smi"})
    pip = rec.pip()
    assert pip[0][0][-2:] == ["https://abetlen.github.io/llama-cpp-python/whl/cu124", f"llama-cpp-python=={V}"]
    assert pip[1][0][:len(WHEEL)] == WHEEL
    assert pip[1][1]["env"]["CMAKE_ARGS"] == _course_flags("-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=80")
    assert [c for c, _ in pip[3:]] == [COURSE]
    assert "llama.cpp backend: CUDA" in capsys.readouterr().out
    assert "CMAKE_ARGS" not in os.environ and "CUDACXX" not in os.environ, "the kernel's environment is left as it was"


@pytest.mark.parametrize("cuda, tag", [((12, 5), "cu125"), ((12, 8), "cu125"), ((12, 4), "cu124"), ((13, 1), "cu130"),
                                       ((13, 2), "cu132"), ((11, 8), "cu118"), ((12, 0), None), ((14, 0), None),
                                       (None, None)])
def test_the_wheel_index_matches_the_runtimes_cuda(cuda, tag):
    """Never a wheel built for a newer CUDA than the runtime's, nor for another major version."""
    assert installer.wheel_tag(cuda) == tag


def test_dry_run_installs_nothing(monkeypatch, colab_env, capsys):
    rec = Recorder(colab_env, gpu="7.5", nvcc="release 12.5")
    monkeypatch.setattr(subprocess, "run", rec)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: {"nvidia-smi": "/x", "nvcc": "/usr/bin/nvcc"}.get(name))
    assert installer.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not rec.pip() and "whl/cu125" in out and "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=75" in out
