"""Autograding in the bubblewrap sandbox: malicious submissions fail, honest ones are untouched.

One released course root gets three honest submissions (solution, partial, wrong: 15, 8, 0)
and one submission per attack: the solution with an extra code cell that tries the attack
with the real paths of this course (each attack is bounded, so a broken sandbox fails the
test instead of the machine). The honest three are graded alone first, in a copy of the root
made before any grading; then everything is graded together, two workers at once. Checked:

- every attack cell ends in the error the sandbox causes, in the autograded notebook and in
  the student's HTML feedback, and nothing it tried happened (no solution text in its
  outputs, no file written, no connection received);
- each honest student's per-question scores are those of the run without attackers;
- every submitted file is byte-identical before and after;
- the gradebook's ``sqlite3 .dump`` only gains rows of the tables nbgrader's trusted process
  writes when it grades (students, submissions, grades, comments); nothing else changes.

The same attacks run in each sandbox this machine has: bubblewrap, Podman and Docker
(``--sandbox docker|podman``, :mod:`courseutils.grading.sandbox_container`). They never skip
on CI (``CI=true``) for bubblewrap and Podman, which ``make system-deps`` installs; Docker
needs a running daemon, so its run is skipped where there is none.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import threading
import warnings
from pathlib import Path

import nbformat
import pytest

from courseutils.core.errors import CourseError
from courseutils.grading import instructor as grading, sandbox, sandbox_choice, sandbox_container

ROOT = grading.course_root()
QUIZ = grading.quiz_ids(ROOT)[0]
LIMITS = sandbox.Limits(memory_bytes=2**30, cpu_seconds=60, processes=32, file_bytes=8 * 2**20,
                        tmpfs_bytes=32 * 2**20)
HONEST = {"sol": "solution", "part": "partial", "bad": "wrong"}


# Podman's settings for these tests: runc and cgroupfs, which also work where cgroups v1 and v2
# are mounted together (crun, Podman's default runtime, refuses such hosts).
CONTAINERS_CONF = Path(__file__).parent / "fixtures" / "containers.conf"
REQUIRED_ON_CI = ("bwrap", "podman")


def _problem(mode: str) -> str | None:
    root = Path(os.environ.get("TMPDIR", "/tmp")) / "courseutils-sandbox-probe-root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTAINERS_CONF", str(CONTAINERS_CONF))
        return sandbox_choice.problem(mode, root, LIMITS)


PROBLEMS = {mode: _problem(mode) for mode in ("bwrap", "podman", "docker")}
PROBLEM = PROBLEMS["bwrap"]
needs_bwrap = pytest.mark.skipif(PROBLEM is not None and os.environ.get("CI") != "true",
                                 reason=f"bubblewrap sandbox unavailable: {PROBLEM}")


def _skip_unless_available(mode: str) -> None:
    if PROBLEMS[mode] is not None and not (mode in REQUIRED_ON_CI and os.environ.get("CI") == "true"):
        pytest.skip(f"{mode} sandbox unavailable: {PROBLEMS[mode]}")


@pytest.mark.parametrize("mode", REQUIRED_ON_CI)
def test_the_sandbox_works_on_ci(mode):
    """On CI the sandbox tests must run, not skip (make test installs bubblewrap and Podman)."""
    if os.environ.get("CI") != "true" and PROBLEMS[mode] is not None:
        pytest.skip(f"not CI, and the {mode} sandbox is unavailable: {PROBLEMS[mode]}")
    assert PROBLEMS[mode] is None


# --------------------------------------------------------------------------- attacks
def attacks(root: Path, other: Path, secret: Path, port: int) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{student: (code of the attack cell, error names the sandbox may cause)}``.

    Filling the connection folder (the one place outside the sandbox it may write) is stopped
    only when grading as root (a 1 MiB tmpfs), so that attack is only tried then.
    """
    source = root / "source" / QUIZ / f"{QUIZ}.ipynb"
    fill = {"connection_folder": ("import os, sys\n"
                                  "folder = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
                                  "for i in range(20):  # 20 x 4 MiB\n"
                                  "    with open(os.path.join(folder, f'fill{i}.bin'), 'wb') as f:\n"
                                  "        f.write(bytes(4 * 2**20))\n", ("OSError",))} if os.geteuid() == 0 else {}
    return fill | {
        "read_solution": (f"for path in [{str(source)!r}, '../../../source/{QUIZ}/{QUIZ}.ipynb']:\n"
                          "    print(open(path).read())\n", ("FileNotFoundError",)),
        "read_secret": (f"print(open({str(secret)!r}).read())\n", ("FileNotFoundError",)),
        "gradebook": ("import sqlite3\n"
                      f"db = sqlite3.connect({str(root / 'gradebook.db')!r})\n"
                      "db.execute('UPDATE grade SET manual_score = 1, auto_score = 1')\n"
                      "db.execute(\"UPDATE student SET first_name = 'pwned'\")\n"
                      "db.commit()\n", ("OperationalError",)),
        "other_student": (f"open({str(other)!r}, 'w').write('{{}}')\n"
                          f"import os\nos.remove({str(other)!r})\n", ("FileNotFoundError",)),
        "memory": ("hog = bytearray(3 * 2**30)  # 3 GiB; the limit is 1 GiB\n", ("MemoryError",)),
        "fork": ("import os, time\n"
                 "children = 0\n"
                 "while children < 2000:  # bounded, in case the limit is missing\n"
                 "    if os.fork() == 0:\n"
                 "        time.sleep(600)\n"
                 "        os._exit(0)\n"
                 "    children += 1\n"
                 "print(f'forked {children} children')\n", ("BlockingIOError",)),
        "loop": ("while True:\n    pass\n", ("KeyboardInterrupt", "CellTimeoutError")),
        "network": ("import socket\n"
                    f"socket.create_connection(('127.0.0.1', {port}), timeout=5).sendall(b'stolen')\n",
                    ("ConnectionRefusedError", "OSError")),
        "huge_file": ("with open('huge.bin', 'wb') as f:\n"
                      "    for _ in range(100):  # 100 MiB; the limit is 8 MiB\n"
                      "        f.write(bytes(2**20))\n", ("OSError",)),
    }


def _write(root: Path, student: str, nb) -> None:
    folder = root / "submitted" / student / QUIZ
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{QUIZ}.ipynb"))


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return list(con.iterdump())


def _attack_cell(nb, code: str) -> dict:
    return next(c for c in nb.cells if c.cell_type == "code" and c.source == code)


@pytest.fixture(scope="module", params=["bwrap", "podman", "docker"])
def graded(request, tmp_path_factory):
    mode = request.param
    _skip_unless_available(mode)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTAINERS_CONF", str(CONTAINERS_CONF))  # read by Podman, also in the worker processes
        yield _grade_with_attackers(mode, tmp_path_factory.mktemp(f"sandbox-{mode}"))


def _grade_with_attackers(mode: str, base: Path) -> dict:
    root = base / "quizzes"
    root.mkdir()
    config = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
    config += "".join(f"\nc.SandboxLimits.{k} = {v}" for k, v in LIMITS.__dict__.items()) + "\n"
    (root / "nbgrader_config.py").write_text(config, encoding="utf-8")
    shutil.copytree(ROOT / "source" / QUIZ, root / "source" / QUIZ)
    grading.release(QUIZ, root)
    samples = grading.sample_submissions(QUIZ, root)
    for student, kind in HONEST.items():
        _write(root, student, samples[kind][0])
    alone = base / "alone"
    shutil.copytree(root, alone)  # released, honest submissions only, nothing graded

    secret = base / "exam_secret.txt"
    secret.write_text("correct horse battery staple\n", encoding="utf-8")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    received: list[bytes] = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(100))
            conn.close()

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    victim = root / "submitted" / "sol" / QUIZ / f"{QUIZ}.ipynb"
    plan = attacks(root, victim, secret, server.getsockname()[1])
    for student, (code, _) in plan.items():
        nb = nbformat.from_dict(json.loads(json.dumps(samples["solution"][0])))
        cell = nbformat.v4.new_code_cell(code)
        nb.cells.insert(next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and
                             c.metadata.get("nbgrader", {}).get("solution")), cell)
        _write(root, student, nb)

    kw = dict(workers=2, timeout=5, total_timeout=60, progress=False, sandbox=mode)
    alone_report = grading.autograde(QUIZ, alone, **kw)[QUIZ]
    submitted_before = _tree_digest(root / "submitted")
    dump_before = _dump(root / "gradebook.db")
    report = grading.autograde(QUIZ, root, **kw)[QUIZ]
    feedback = grading.feedback(QUIZ, root)
    stop.set()
    thread.join()
    server.close()
    return dict(root=root, plan=plan, report=report, alone=alone_report, secret=secret, received=received,
                alone_scores=grading.question_scores(QUIZ, alone), scores=grading.question_scores(QUIZ, root),
                submitted_before=submitted_before, submitted_after=_tree_digest(root / "submitted"),
                dump_before=dump_before, dump_after=_dump(root / "gradebook.db"), feedback=feedback)


@pytest.mark.slow
def test_the_batch_finishes_and_grades_everyone(graded):
    report = graded["report"]
    assert report["failed"] == [], {s: report["logs"][s][-2000:] for s in report["failed"]}
    assert set(report["graded"]) == set(HONEST) | set(graded["plan"])


@pytest.mark.slow
def test_every_attack_fails_with_the_sandbox_error_in_notebook_and_feedback(graded):
    root = graded["root"]
    for student, (code, errors) in graded["plan"].items():
        nb = nbformat.read(str(root / "autograded" / student / QUIZ / f"{QUIZ}.ipynb"), as_version=4)
        cell = _attack_cell(nb, code)
        names = [o.ename for o in cell.outputs if o.output_type == "error"]
        assert names and names[0] in errors, (student, cell.outputs)
        page = (root / "feedback" / student / QUIZ / f"{QUIZ}.html").read_text(encoding="utf-8")
        assert names[0] in page, student


@pytest.mark.slow
def test_nothing_an_attack_tried_happened(graded):
    root = graded["root"]
    source = nbformat.read(str(root / "source" / QUIZ / f"{QUIZ}.ipynb"), as_version=4)
    hidden = [line.strip() for c in source.cells for line in c.source.splitlines()
              if "### BEGIN HIDDEN TESTS" in c.source and len(line.strip()) > 20 and "assert" in line]
    assert hidden
    for student in graded["plan"]:
        nb = nbformat.read(str(root / "autograded" / student / QUIZ / f"{QUIZ}.ipynb"), as_version=4)
        outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
        assert not any(line in outputs for line in hidden), student
        assert "correct horse" not in outputs, student  # the secret's text (tracebacks quote only the code)
    assert graded["received"] == []  # the network attack never connected
    assert not list(root.rglob("huge.bin")), "the huge file was written into the course"
    fork_cell = _attack_cell(nbformat.read(str(root / "autograded" / "fork" / QUIZ / f"{QUIZ}.ipynb"), as_version=4),
                             graded["plan"]["fork"][0])
    assert "forked 2000 children" not in json.dumps(fork_cell.outputs)


@pytest.mark.slow
def test_honest_scores_are_those_graded_alone(graded):
    for student, kind in HONEST.items():
        assert graded["scores"][student] == graded["alone_scores"][student], student
        assert graded["report"]["graded"][student] == graded["alone"]["graded"][student]
    assert {s: graded["report"]["graded"][s][0] for s in HONEST} == {"sol": 15.0, "part": 8.0, "bad": 0.0}
    # the attackers answered everything right: the attack cost them nothing but itself
    assert graded["report"]["graded"]["read_solution"] == (15.0, 15.0)


@pytest.mark.slow
def test_submissions_are_byte_identical(graded):
    assert graded["submitted_after"] == graded["submitted_before"]
    assert len(graded["submitted_before"]) >= len(HONEST) + len(graded["plan"])


@pytest.mark.slow
def test_gradebook_changes_only_in_rows_the_grader_writes(graded):
    before, after = graded["dump_before"], graded["dump_after"]
    assert not set(before) - set(after), sorted(set(before) - set(after))[:5]
    written = ('INSERT INTO "student"', 'INSERT INTO "submitted_assignment"', 'INSERT INTO "submitted_notebook"',
               'INSERT INTO "grade"', 'INSERT INTO "comment"')
    added = sorted(set(after) - set(before))
    assert added and all(line.startswith(written) for line in added), [l for l in added if not l.startswith(written)][:5]
    assert not any("pwned" in line for line in after)


# --------------------------------------------------------------------------- choosing the sandbox
def test_unknown_modes_are_refused(tmp_path):
    with pytest.raises(CourseError, match="sandbox='chroot'"):
        sandbox_choice.resolve("chroot", tmp_path)
    with pytest.raises(CourseError, match="engine='lxc'"):
        sandbox_container.ContainerKernel(tmp_path, engine="lxc")


def test_a_missing_engine_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox_container.shutil, "which", lambda name: None)
    with pytest.raises(CourseError, match="sandbox='podman' cannot run here.*podman command is not installed"):
        sandbox_choice.resolve("podman", tmp_path)


def test_the_container_shows_only_the_allow_list_read_only(tmp_path):
    settings = {"engine": "/usr/bin/podman", "uid": 65534, "label": "courseutils.sandbox=x", "python": "/opt/py/bin/python",
                "paths": ["/opt/py"], "runtime": "/tmp/box/run", "limits": LIMITS.__dict__, "pythonpath": "/opt/src"}
    argv = sandbox_container.run_argv(settings, "/tmp/box/submission", ["python", "-c", "1"])
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert all(v.endswith(":ro") for v in volumes if not v.startswith("/tmp/box/run:"))
    assert "/tmp/box/run:/tmp/box/run" in volumes and "/opt/py:/opt/py:ro" in volumes
    assert "/tmp/box/submission:/run/submission:ro" in volumes
    for flag, value in [("--network", "none"), ("--user", "65534:65534"), ("--cap-drop", "ALL"),
                        ("--pids-limit", str(LIMITS.processes)), ("--memory", str(LIMITS.memory_bytes))]:
        assert argv[argv.index(flag) + 1] == value, flag
    assert "--read-only" in argv and argv[-4:] == [sandbox_container.IMAGE, "python", "-c", "1"]


def test_the_empty_image_holds_only_symlinks_and_folders():
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(sandbox_container.empty_image_tar())) as tar:
        members = tar.getmembers()
    assert members and all(m.issym() or m.isdir() for m in members)
    assert {m.name for m in members if m.isdir()} >= {"etc", "tmp", "home", "proc"}


def test_off_warns_what_is_not_protected(tmp_path):
    with pytest.warns(sandbox.SandboxWarning, match="quizzes/source"):
        assert sandbox_choice.resolve("off", tmp_path) == "off"


def test_auto_without_bwrap_warns_and_bwrap_without_it_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.warns(sandbox.SandboxWarning, match="without a sandbox.*not installed"):
        assert sandbox_choice.resolve("auto", tmp_path) == "off"
    with pytest.raises(CourseError, match="sandbox='bwrap' cannot run here"):
        sandbox_choice.resolve("bwrap", tmp_path)


@needs_bwrap
def test_auto_is_bwrap_where_it_works(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sandbox_choice.resolve("auto", tmp_path) == "bwrap"


def test_limits_are_checked():
    with pytest.raises(CourseError, match="SandboxLimits.processes=0"):
        sandbox.Limits(processes=0)
    with pytest.raises(CourseError, match="c.SandboxLimits.memory:"):
        sandbox.Limits.from_config({"SandboxLimits": {"memory": 5}})
    assert sandbox.Limits.from_config({"SandboxLimits": {"processes": 7}}) == sandbox.Limits(processes=7)


@needs_bwrap
def test_the_kernelspec_runs_the_launcher_and_interrupts_by_message(tmp_path):
    with sandbox.BwrapKernel(tmp_path / "quizzes", LIMITS) as box:
        spec = json.loads((box.dir / "kernels" / sandbox.KERNEL_NAME / "kernel.json").read_text())
        settings = json.loads((box.dir / "sandbox.json").read_text())
        assert spec["argv"][1:4] == ["-m", "courseutils.grading.sandbox", "launch"]
        assert spec["interrupt_mode"] == "message"
        assert settings["limits"] == LIMITS.__dict__
        assert not any(str(tmp_path) in p for p in settings["paths"])
    assert not box.dir.exists()


def test_a_python_inside_the_course_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.sys, "prefix", str(tmp_path))  # a venv whose folder holds the course
    with pytest.raises(CourseError, match="holds the course root"):
        sandbox._kernel_paths(tmp_path / "quizzes")


def test_cli_rejects_an_unknown_sandbox(capsys):
    with pytest.raises(SystemExit):
        grading.main(["autograde", "--sandbox", "chroot"])
    assert "--sandbox" in capsys.readouterr().err
