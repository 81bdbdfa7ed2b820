"""courseutils.core.io.atomic_path: the one temp-file-then-rename helper, on success and on error."""
import os

import pytest

from courseutils.core.errors import CourseError
from courseutils.core.io import atomic_path, check_output_path


class Boom(Exception):
    pass


def test_success_replaces_the_target_and_leaves_nothing_else(tmp_path):
    out = tmp_path / "card.json"
    out.write_text("old")
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".card.json.") and tmp.name.endswith(".partial")
        assert not tmp.exists()               # nothing is created before the block writes
        tmp.write_text("new")
        assert out.read_text() == "old"       # the real name changes only when the block is done
    assert out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_error_in_the_block_keeps_the_old_target_and_removes_the_temp(tmp_path):
    out = tmp_path / "model.gguf"
    out.write_bytes(b"GGUF old")
    before = os.stat(out)
    with pytest.raises(Boom):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"GGUF half-writ")
            raise Boom("disk full")
    assert out.read_bytes() == b"GGUF old"
    after = os.stat(out)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_error_without_a_target_leaves_the_directory_empty(tmp_path):
    with pytest.raises(KeyboardInterrupt):   # not an Exception: cleanup must still happen
        with atomic_path(tmp_path / "x.csv") as tmp:
            tmp.write_text("a,b\n")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_two_writers_get_different_temporary_names(tmp_path):
    with atomic_path(tmp_path / "k.json") as a, atomic_path(tmp_path / "k.json") as b:
        assert a != b
        a.write_text("1")
        b.write_text("2")
    assert (tmp_path / "k.json").read_text() == "1"   # the outer block finishes last
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_bad_targets_are_refused_before_the_block_runs(tmp_path):
    with pytest.raises(CourseError, match=r"-o/--output=.*the directory .* does not exist"):
        with atomic_path(tmp_path / "missing" / "x.gguf", "-o/--output"):
            pytest.fail("the block must not run")
    with pytest.raises(CourseError, match="out=.* is a directory"):
        check_output_path(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(CourseError, match="out_dir=.* is a file"):
        check_output_path(tmp_path / "f", "out_dir", directory=True)


def test_directory_mode_swaps_a_whole_directory(tmp_path):
    out = tmp_path / "tinycode"
    out.mkdir()
    (out / "old.bin").write_text("old")
    with atomic_path(out, directory=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "config.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["tinycode"]

    with pytest.raises(Boom):
        with atomic_path(out, directory=True) as tmp:
            (tmp / "half.safetensors").write_text("...")
            raise Boom
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["tinycode"]
