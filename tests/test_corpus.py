import pytest

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
