import pytest

from courseutils.core.errors import CourseError
from courseutils.model.corpus import SPLITS, corpus_fingerprint, corpus_text, split_of, stdlib_files


def test_split_is_deterministic_and_by_path():
    files = stdlib_files()
    assert len(files) > 100
    splits = [split_of(f.relpath) for f in files]
    assert set(splits) == set(SPLITS)
    assert splits == [split_of(f.relpath) for f in stdlib_files()]
    # roughly 90 / 5 / 5
    assert 0.8 < splits.count("train") / len(splits) < 0.97


def test_no_test_suites_in_corpus():
    assert not any("/test/" in f"/{f.relpath}" for f in stdlib_files())


@pytest.mark.slow
def test_fingerprint_is_stable_and_splits_disjoint(tmp_path):
    a, b = corpus_fingerprint(), corpus_fingerprint()
    assert a == b and len(a["sha256"]) == 64
    # a different tree gives a different fingerprint
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    assert corpus_fingerprint(tmp_path)["sha256"] != a["sha256"]
    val = corpus_text("validation", max_chars=20_000)
    assert 0 < len(val) <= 20_000


def test_split_code_prose_separates_docstrings_and_comments():
    from courseutils.model.corpus import split_code_prose

    src = ('#!/usr/bin/env python\n"""Module doc."""\nimport os  # the os\n\n# first line\n# second line\n'
           'class A:\n    """Class doc.\n\n    More.\n    """\n    def f(self):\n        """F."""\n'
           '        return "not a docstring"  # end\n')
    code, prose = split_code_prose(src)
    assert code == 'import os\nclass A:\n    def f(self):\n        return "not a docstring"\n'
    assert prose == "Module doc.\n\nthe os\n\nfirst line\nsecond line\n\nClass doc.\n\nMore.\n\nF.\n\nend\n"
    import ast
    ast.parse(code)                       # what is left is still Python here
    with pytest.raises(CourseError, match="source does not parse as Python"):
        split_code_prose("def f(:\n")
    with pytest.raises(CourseError, match="source must be a str"):
        split_code_prose(b"x = 1")


def test_corpus_kinds(tmp_path):
    from courseutils.model.corpus import KINDS

    (tmp_path / "pkg").mkdir()
    # find a file name that lands in the calibration split, so the tiny tree has one
    name = next(f"m{i}.py" for i in range(1000) if split_of(f"pkg/m{i}.py") == "calibration")
    (tmp_path / "pkg" / name).write_text('"""Doc."""\nx = 1  # one\n')
    bad = next(f"z{i}.py" for i in range(1000) if split_of(f"pkg/z{i}.py") == "calibration")  # after name
    (tmp_path / "pkg" / bad).write_text("def f(:\n")   # does not parse: only "all" keeps it
    assert corpus_text("calibration", tmp_path, kind="code") == "x = 1\n\n"
    assert corpus_text("calibration", tmp_path, kind="prose") == "Doc.\n\none\n\n"
    assert corpus_text("calibration", tmp_path) == '"""Doc."""\nx = 1  # one\n\ndef f(:\n\n'
    assert corpus_text("calibration", tmp_path, kind="all") == corpus_text("calibration", tmp_path)
    assert KINDS == ("all", "code", "prose")
    with pytest.raises(CourseError, match=r"kind='docs' is not one of \('all', 'code', 'prose'\)"):
        corpus_text("calibration", tmp_path, kind="docs")
    with pytest.raises(CourseError, match="max_chars=0"):
        corpus_text("calibration", tmp_path, max_chars=0)
    with pytest.raises(CourseError, match="max_chars=2.5"):
        corpus_text("calibration", tmp_path, max_chars=2.5)
    import numpy as np
    assert corpus_text("calibration", tmp_path, kind="code", max_chars=np.int64(3)) == "x ="   # numpy integers work


def test_the_stdlib_has_enough_of_each_kind():
    for kind in ("code", "prose"):
        text = corpus_text("calibration", kind=kind, max_chars=50_000)
        assert len(text) == 50_000
    assert "def " not in corpus_text("calibration", kind="prose", max_chars=2_000).split("\n")[0]
