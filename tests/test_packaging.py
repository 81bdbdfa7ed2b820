"""The project's promises about itself: dependency lists in sync, the two commands, CI, stripped notebooks."""
import json
import re
try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

import pytest


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject(root):
    return tomllib.loads((root / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject(root):
    project = _pyproject(root)["project"]
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    wanted = {r.replace(" ", "") for r in project["dependencies"] + extras}
    text = (root / "environment.yml").read_text()
    pip_section = text[text.index("- pip:"):]
    listed = {m.replace(" ", "") for m in re.findall(r"^\s{6,}- ([A-Za-z][^\n]*)$", pip_section, re.M)}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"


def test_make_targets_and_ci(root):
    makefile = (root / "Makefile").read_text()
    for target in ("lab", "test", "test-fast", "demo", "model", "release", "autograde", "feedback", "bench", "html", "clean"):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} is missing"
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make lab" in readme


def _dry_run_install(root, **variables) -> str:
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    args = ["make", "-n", "-B", "install"] + [f"{k}={v}" for k, v in variables.items()]
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _torch_line(dry_run: str) -> str:
    return next(line for line in dry_run.splitlines() if "pip install" in line and line.rstrip().endswith(" torch"))


def test_torch_comes_from_the_cpu_index_without_a_gpu(root):
    line = _torch_line(_dry_run_install(root, NVIDIA_GPU=""))
    assert "--index-url https://download.pytorch.org/whl/cpu" in line and "-c constraints.txt" in line


def test_torch_comes_from_pypi_with_a_gpu_or_when_asked(root):
    assert "--index-url" not in _torch_line(_dry_run_install(root, NVIDIA_GPU="yes"))
    assert "--index-url" not in _torch_line(_dry_run_install(root, NVIDIA_GPU="", TORCH_INDEX=""))


def test_install_uses_the_constraints_and_the_safe_llama_cpp_build(root):
    dry_run = _dry_run_install(root)
    lines = dry_run.splitlines()
    llama = next(i for i, line in enumerate(lines) if "tools/build_llama_cpp.py wheel" in line)
    course = next(i for i, line in enumerate(lines) if "pip install" in line and "-e " in line)
    assert llama < course, "llama-cpp-python must be installed before the course, or pip builds it natively"
    assert "-c constraints.txt" in lines[course] and "lab,instructor,dev" in lines[course]
    pins = (root / "constraints.txt").read_text()
    assert re.search(r"^llama[-_]cpp[-_]python==[\d.]+$", pins, re.M | re.I)
    assert re.search(r"^torch==[\d.]+$", pins, re.M), "torch pinned without a +cpu/+cu label"


def test_lesson_outputs_are_stripped(root):
    for nb_path in sorted((root / "lessons").glob("*.ipynb")) + sorted((root / "quizzes" / "source").glob("*/*.ipynb")):
        nb = json.loads(nb_path.read_text())
        dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or
                                                                                       c.get("execution_count"))]
        assert not dirty, f"{nb_path.name}: outputs not stripped in cells {dirty}"


def test_colab_badges_point_at_the_repository(root):
    repo = _pyproject(root)["project"]["urls"]["Repository"]
    slug = repo.removeprefix("https://github.com/")
    for nb_path in sorted((root / "lessons").glob("*.ipynb")):
        text = nb_path.read_text()
        badge = f"https://colab.research.google.com/github/{slug}/blob/main/lessons/{nb_path.name}"
        assert badge in text, f"{nb_path.name}: Colab badge missing or pointing elsewhere"
        assert f'url = "{repo}"' in text.replace('\\"', '"'), \
            f"{nb_path.name}: the Colab install cell must install from {repo} (tools/colab_cells.py writes it)"
        other = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+?)(?:/blob|\.git|\"|\\\\n|\s)", text)) - {slug}
        assert not other, f"{nb_path.name} mentions other repositories: {other}"


def test_model_data_is_package_data(root):
    data = _pyproject(root)["tool"]["setuptools"]["package-data"]["courseutils"]
    assert "data/tinycode/*" in data
    files = {p.name for p in (root / "src" / "courseutils" / "data" / "tinycode").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "model_card.json"} <= files


def test_lessons_link_to_answer_free_quizzes(root):
    for nb_path in sorted((root / "lessons").glob("*.ipynb")):
        text = nb_path.read_text()
        link = f"../quizzes/student/{nb_path.stem}/{nb_path.stem}.ipynb"
        assert link in text, f"{nb_path.name} must link to its quiz's student copy {link}"
        assert (root / "quizzes" / "student" / nb_path.stem / f"{nb_path.stem}.ipynb").is_file()
        assert "quizzes/source/" not in text, f"{nb_path.name} links to an instructor version (with solutions)"
