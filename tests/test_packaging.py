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
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    text = (root / "environment.yml").read_text()
    pip_section = text[text.index("- pip:"):]
    listed = {m.replace(" ", "") for m in re.findall(r"^\s{6,}- ([A-Za-z][^\n]*)$", pip_section, re.M)}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"


def test_make_targets_and_ci(root):
    makefile = (root / "Makefile").read_text()
    for target in ("lab", "test", "demo", "model", "release", "autograde", "feedback", "bench", "html", "clean"):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} is missing"
    assert "torch==" in makefile  # the CPU wheel first, so pip does not pull CUDA packages
    ci = (root / ".ci" / "run").read_text()
    readme = (root / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make lab" in readme


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
        assert f"git+{repo}" in text, f"{nb_path.name}: the Colab install cell must install {repo}"
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
