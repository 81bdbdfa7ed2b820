"""The quality widgets: every check here recomputes the expected verdict from the row numbers
themselves (brute force over the thresholds), never through Rubric.check or smallest_passing,
so a bug in the rubric logic or in the widget's wiring makes them fail."""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from courseutils.core.errors import CourseError
from courseutils.scoring.scorecard import Rubric
from courseutils.viz.widgets_quality import common_prefix_len, completion_explorer, rescore, rubric_explorer

ROWS = [
    {"type": "F16", "file_bytes": 100, "ppl": 10.0, "kld": 0.0, "top1_agreement": 1.0, "format_following": 0.9,
     "task_accuracy": 0.5},
    {"type": "Q8_0", "file_bytes": 53, "ppl": 10.01, "kld": 0.001, "top1_agreement": 0.98, "format_following": 0.9,
     "task_accuracy": 0.5},
    {"type": "Q4_K_M", "file_bytes": 30, "ppl": 10.3, "kld": 0.03, "top1_agreement": 0.92, "format_following": 0.8,
     "task_accuracy": 0.45},
]


def expected_smallest(rows, max_ppl_increase, max_kld, min_top1, min_format_following, min_task_accuracy):
    """The smallest row that meets every threshold, written out independently of the package."""
    ref_ppl = rows[0]["ppl"]
    ok = [r for r in rows
          if r["ppl"] <= ref_ppl * (1 + max_ppl_increase) and r["kld"] <= max_kld
          and r["top1_agreement"] >= min_top1 and r["format_following"] >= min_format_following
          and r["task_accuracy"] >= min_task_accuracy]
    return min(ok, key=lambda r: r["file_bytes"])["type"] if ok else None


def verdict(html_text: str) -> str | None:
    """The variant the widget's table names as the smallest passing one (None: 'no variant passes')."""
    found = re.search(r"smallest passing variant: <b>([^<]+)</b>", html_text)
    if found:
        return found.group(1)
    assert "no variant passes" in html_text, "the table states no verdict"
    return None


def highlighted_rows(html_text: str) -> list[str]:
    return re.findall(r"<tr style='background:#e6f4e6;font-weight:bold'><td>([^<]+)</td>", html_text)


@pytest.mark.parametrize("thresholds, literal", [
    ((0.02, 0.02, 0.90, 0.0, 0.0), "Q8_0"),        # the default rubric: Q4_K_M's KLD 0.03 is too high
    ((0.05, 0.05, 0.90, 0.0, 0.0), "Q4_K_M"),      # loosen ppl and KLD: the 30-byte file passes
    ((0.02, 0.02, 0.90, 0.95, 0.0), None),         # format 0.95 fails even the reference
    ((0.0, 0.0, 1.0, 0.0, 0.0), "F16"),            # only the reference itself
])
def test_rescore_matches_brute_force(thresholds, literal):
    checks, smallest = rescore(ROWS, Rubric(*thresholds))
    assert smallest == literal == expected_smallest(ROWS, *thresholds)
    # per-row criteria agree with the thresholds applied by hand
    assert [all(c.values()) for c in checks] == [_passes(row, *thresholds) for row in ROWS]


def _passes(row, max_ppl_increase, max_kld, min_top1, min_format_following, min_task_accuracy):
    return (row["ppl"] <= ROWS[0]["ppl"] * (1 + max_ppl_increase) and row["kld"] <= max_kld
            and row["top1_agreement"] >= min_top1 and row["format_following"] >= min_format_following
            and row["task_accuracy"] >= min_task_accuracy)


def test_moving_sliders_changes_which_variant_passes():
    box = rubric_explorer({"variants": ROWS, "rubric": {}})
    ppl_w, kld_w, top1_w, fmt_w, task_w, table = box.children

    def current():
        return (ppl_w.value, kld_w.value, top1_w.value, fmt_w.value, task_w.value)

    # start: the default rubric, so Q4_K_M (KLD 0.03 > 0.02) fails and Q8_0 is the answer
    assert verdict(table.value) == expected_smallest(ROWS, *current()) == "Q8_0"
    assert highlighted_rows(table.value) == ["Q8_0"]

    # each slider, moved alone, changes the verdict (so each one is wired to the table)
    steps = [(ppl_w, 0.05, "Q8_0"),     # ppl alone is not enough: Q4_K_M's KLD 0.03 is still too high
             (kld_w, 0.05, "Q4_K_M"),   # now both: the smallest file passes
             (fmt_w, 0.85, "Q8_0"),     # Q4_K_M's format following is 0.8
             (fmt_w, 0.0, "Q4_K_M"),
             (ppl_w, 0.02, "Q8_0"),     # Q4_K_M's ppl is +3 %
             (top1_w, 0.99, "F16"),     # Q8_0's top-1 is 0.98: only the reference is left
             (task_w, 0.6, None)]       # above every row, the reference's too
    for widget, value, literal in steps:
        widget.value = value
        assert verdict(table.value) == expected_smallest(ROWS, *current()) == literal, (widget.description, value)
        assert highlighted_rows(table.value) == ([literal] if literal else [])


def test_rubric_explorer_starts_from_the_cards_rubric():
    box = rubric_explorer({"variants": ROWS, "rubric": {"max_kld": 0.05, "max_ppl_increase": 0.05}})
    assert verdict(box.children[-1].value) == "Q4_K_M"


def test_rubric_explorer_rejects_an_empty_card():
    with pytest.raises(CourseError, match="variants"):
        rubric_explorer({"variants": []})


def test_completion_explorer_marks_where_completions_part():
    prompts = ["def f(x):\n", "def g(y):\n"]
    completions = {"F16": ["    return x + 1\n", "    return y\n"], "Q4_K_M": ["    return x - 1\n", "    return y\n"]}
    box = completion_explorer(prompts, completions, "F16")
    prompt_w, type_w, out = box.children[0].children[0], box.children[1], box.children[2]
    k = len("    return x ")
    assert common_prefix_len(completions["F16"][0], completions["Q4_K_M"][0]) == k
    assert f"the first {k} characters agree" in out.value
    # the differing tail is highlighted, the shared prefix is not
    assert "<span style='background:#ffd9d9'>- 1\n</span>" in out.value
    prompt_w.value = 1                      # the second prompt: same text in both
    assert "identical completions" in out.value
    assert type_w.value == "Q4_K_M"


def test_completion_explorer_counts_tokens_when_given_a_tokenizer():
    completions = {"F16": ["a b c d"], "Q8_0": ["a b x d"]}
    box = completion_explorer(["p"], completions, "F16", tokenize=str.split)
    assert "the first 2 of 4 tokens agree" in box.children[2].value


def test_completion_explorer_checks_its_inputs():
    with pytest.raises(CourseError, match="reference"):
        completion_explorer(["p"], {"Q8_0": ["x"]}, "F16")
    with pytest.raises(CourseError, match="one completion per prompt"):
        completion_explorer(["p", "q"], {"F16": ["x"]}, "F16")


def test_common_prefix():
    assert common_prefix_len("abcd", "abxd") == 2
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
    assert common_prefix_len("", "abc") == 0
    assert common_prefix_len("same", "same") == 4


# --------------------------------------------------------------------------- ipywidgets 7.7 (Colab) and 8
WIDGET_MODULES = {"widgets_quality": ("completion_explorer", "rubric_explorer"),
                  "widgets_allocation": ("allocation_explorer",), "widgets_stability": ("stability_explorer",)}

# Runs in a subprocess: builds every widget of the course, moves one control of each, checks the effect.
BUILD_EVERY_WIDGET = r'''
import json, sys
import ipywidgets
expected = sys.argv[1]
assert ipywidgets.__version__.startswith(expected), f"ipywidgets {ipywidgets.__version__}, expected {expected}"
from courseutils.viz.widgets_quality import completion_explorer, rubric_explorer
rows = json.loads(sys.argv[2])
box = rubric_explorer({"variants": rows, "rubric": {}})
assert "smallest passing variant: <b>Q8_0</b>" in box.children[-1].value
box.children[0].value = 0.05        # max ppl increase
box.children[1].value = 0.05        # max KLD (a FloatLogSlider)
assert "smallest passing variant: <b>Q4_K_M</b>" in box.children[-1].value, "the sliders did not re-score"
box = completion_explorer(["p0", "p1"], {"F16": ["abc", "same"], "Q4_K_M": ["abd", "same"]}, "F16")
assert "the first 2 characters agree" in box.children[2].value
box.children[0].children[0].value = 1   # the prompt dropdown
assert "identical completions" in box.children[2].value, "the dropdown did not redraw"
box.children[1].value = "Q4_K_M"        # the ToggleButtons
from courseutils.algorithms.allocation import Candidate
from courseutils.viz.widgets_allocation import allocation_explorer
cands = {t: [Candidate(q, b, s * 4.0 ** -i) for i, (q, b) in enumerate({"Q3_K": 110, "Q6_K": 210}.items())]
         for t, s in {"blk.0.attn_q.weight": 1.0, "blk.0.ffn_down.weight": 5.0}.items()}
box = allocation_explorer(cands, start=220)
assert ">Q6_K<" not in box.children[1].value
box.children[0].value = box.children[0].max   # the budget slider
assert box.children[1].value.count(">Q6_K<") == 2, "the budget slider did not re-solve"
import numpy as np
from courseutils.viz.widgets_stability import stability_explorer
X = np.exp(np.sin(np.arange(36.0)).reshape(6, 6))      # 4 pool rows, 2 reference rows, 6 channels
box = stability_explorer({"a": X, "b": X[:, ::-1]}, 4, sizes=(1, 2), k=2)
assert "<b>1</b> sequence:" in box.children[2].value
box.children[1].value = 2                     # the SelectionSlider
assert "<b>2</b> sequences" in box.children[2].value, "the size slider did not redraw"
box.children[0].value = "b"                   # the layer Dropdown
assert "<b>b</b>" in box.children[2].value, "the layer menu did not redraw"
print(json.dumps({"ipywidgets": ipywidgets.__version__, "file": ipywidgets.__file__}))
'''


def test_every_widget_module_is_covered(root):
    """A new widget module (one that imports ipywidgets) must join the 7.7/8 test below."""
    found = {p.stem for p in (root / "src" / "courseutils" / "viz").glob("*.py") if "ipywidgets" in p.read_text()}
    assert found == set(WIDGET_MODULES), f"widget modules {sorted(found)}; the 7.7/8 test covers {sorted(WIDGET_MODULES)}"
    import importlib

    for name, expected in WIDGET_MODULES.items():
        mod = importlib.import_module(f"courseutils.viz.{name}")
        builders = {b for b in mod.__all__ if b.endswith("_explorer")}
        assert builders == set(expected), f"{name}: builders {sorted(builders)}, the 7.7/8 test builds {expected}"


def ipywidgets77_python(root) -> Path:
    """A throwaway venv (cached in .cache/ipywidgets77-venv) with ipywidgets 7.7 in front of this
    interpreter's site-packages: a .pth file adds them *behind* its own, so ipywidgets 7.7 shadows
    the 8 installed here while everything else (numpy, courseutils' deps) comes from here.
    (--system-site-packages would expose the base Python's packages, not this venv's.)"""
    venv = root / ".cache" / "ipywidgets77-venv"
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    site_packages = sysconfig.get_paths()["purelib"]
    if ready.is_file() and ready.read_text() == site_packages and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # --no-deps: ipywidgets 7.7's own Python dependencies (traitlets, ipykernel, ipython) come from
    # here; ipython_genutils is the one 7.7 needs that 8 dropped.
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                          "ipywidgets==7.7.*", "ipython_genutils"], capture_output=True, text=True)
    assert out.returncode == 0, f"could not install ipywidgets 7.7 into {venv} (PyPI needed once):\n{out.stderr[-2000:]}"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # site.addsitedir (not a bare path) so the .pth files there (e.g. editable installs) are read too
    (Path(own) / "zz_behind_course_venv.pth").write_text(f"import site; site.addsitedir({site_packages!r})\n")
    ready.write_text(site_packages)
    return python


@pytest.mark.slow
@pytest.mark.parametrize("major", ["7.7", "8"])
def test_every_widget_builds_and_responds_under_ipywidgets(major, root):
    import json

    python = ipywidgets77_python(root) if major == "7.7" else Path(sys.executable)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([str(python), "-c", BUILD_EVERY_WIDGET, major, json.dumps(ROWS)], capture_output=True,
                         text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["ipywidgets"].startswith(major)


# --------------------------------------------------------------------------- the lessons' own interact() widgets
def lesson_widget_calls(root) -> list[dict]:
    """Every ``widgets.interact(f, name=widgets.X(...), ...)`` in a lesson's code, as data a subprocess can build.

    Keyword values that are literals are kept; the others are replaced: ``options`` by three
    labels (the literal ``value`` first, when there is one), anything else dropped (the widget's
    default). So the test builds the same widget classes with the same keywords the lessons use.
    """
    import ast
    import json as _json

    found = []
    for nb_path in sorted((root / "lessons").glob("*.ipynb")):
        for i, cell in enumerate(_json.loads(nb_path.read_text())["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] != "code" or "widgets.interact" not in src:
                continue
            src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(src)):
                if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "widgets.interact"):
                    continue
                controls = {}
                for kw in node.keywords:
                    call = kw.value
                    assert isinstance(call, ast.Call) and ast.unparse(call.func).startswith("widgets."), \
                        f"{nb_path.name} cell {i}: {kw.arg}= is not a widgets.X(...) call; extend this test"
                    kwargs = {}
                    for k in call.keywords:
                        try:
                            kwargs[k.arg] = ast.literal_eval(k.value)
                        except ValueError:
                            kwargs[k.arg] = None
                    if "options" in kwargs and kwargs["options"] is None:
                        first = [kwargs["value"]] if kwargs.get("value") is not None else []
                        kwargs["options"] = first + ["opt_b", "opt_c"]
                    kwargs = {k: v for k, v in kwargs.items() if v is not None}
                    controls[kw.arg] = {"cls": ast.unparse(call.func).split(".", 1)[1], "kwargs": kwargs}
                found.append({"where": f"{nb_path.name} cell {i}", "controls": controls})
    return found


BUILD_LESSON_WIDGETS = r'''
import json, sys
import ipywidgets as widgets
assert widgets.__version__.startswith(sys.argv[1]), widgets.__version__
for call in json.loads(sys.argv[2]):
    names = list(call["controls"])
    seen = []
    f = eval("lambda " + ", ".join(f"{n}=None" for n in names) + ": seen.append((" + ", ".join(names) + ",))",
             {"seen": seen})
    controls = {n: getattr(widgets, c["cls"])(**c["kwargs"]) for n, c in call["controls"].items()}
    for n, c in call["controls"].items():
        unknown = [k for k in c["kwargs"] if not controls[n].has_trait(k)]
        assert not unknown, f"{call['where']}: {c['cls']} has no {unknown} in ipywidgets {widgets.__version__}"
    box = widgets.interactive(f, **controls)
    for k, (name, w) in enumerate(controls.items()):
        if isinstance(w, widgets.SelectMultiple):
            w.index = (len(w.options) - 1,)
        elif hasattr(w, "index"):                        # Dropdown, ToggleButtons
            w.index = (w.index + 1) % len(w.options)
        elif isinstance(w, widgets.FloatLogSlider):
            w.value = w.base ** w.max
        elif hasattr(w, "max"):                          # IntSlider, FloatSlider
            w.value = w.max
        else:                                            # Text
            w.value = "2.5"
        assert seen and seen[-1][k] == w.value, f"{call['where']}: moving {name} did not call the function"
print(json.dumps({"calls": len(json.loads(sys.argv[2])), "ipywidgets": widgets.__version__}))
'''


def test_lesson_widgets_are_found(root):
    """Every lesson cell with widgets.interact is parsed (a new lesson's widgets join the 7.7/8 test below)."""
    calls = lesson_widget_calls(root)
    assert len(calls) >= 7 and all(c["controls"] for c in calls)
    classes = {c["cls"] for call in calls for c in call["controls"].values()}
    assert {"Dropdown", "IntSlider", "FloatLogSlider", "SelectMultiple", "ToggleButtons", "Text"} <= classes


def test_every_explorer_a_lesson_calls_is_covered(root):
    """The *_explorer builders lessons call are the ones the 7.7/8 test builds."""
    used = set()
    for nb_path in sorted((root / "lessons").glob("*.ipynb")):
        text = "".join("".join(c["source"]) for c in __import__("json").loads(nb_path.read_text())["cells"]
                       if c["cell_type"] == "code")
        used |= set(re.findall(r"\b(\w+_explorer)\(", text))
    covered = {b for builders in WIDGET_MODULES.values() for b in builders}
    assert used and used <= covered, f"lessons call {sorted(used - covered)}, which the 7.7/8 test does not build"


@pytest.mark.slow
@pytest.mark.parametrize("major", ["7.7", "8"])
def test_lesson_interact_widgets_respond_under_ipywidgets(major, root):
    """The lessons' interact() controls, built with the lessons' keywords, call their function when moved."""
    import json

    python = ipywidgets77_python(root) if major == "7.7" else Path(sys.executable)
    calls = lesson_widget_calls(root)
    out = subprocess.run([str(python), "-c", BUILD_LESSON_WIDGETS, major, json.dumps(calls)], capture_output=True,
                         text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["calls"] == len(calls)
