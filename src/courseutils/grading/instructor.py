"""Instructor side of the quizzes: release, collect, autograde, feedback, grades, and keys.

Everything goes through nbgrader's own Python API (:class:`nbgrader.apps.NbGraderAPI`)
on the course root: ``--root``, else ``./quizzes`` or ``.`` in the current directory, else
the ``quizzes/`` next to the installed package (every command prints which, on stderr). The command line (every command has ``--help``)::

    python -m courseutils.grading keys      [--quiz all|NN_slug] [--check]   # make quiz-keys
    python -m courseutils.grading release   [--quiz all|NN_slug]             # make release
    python -m courseutils.grading release   --exam --secret-file FILE [--roster FILE] [--quiz ...]
                                                                   # make release EXAM=1 SECRET_FILE=...
    python -m courseutils.grading collect   --quiz NN_slug --student ID [--timestamp TIME] NOTEBOOK
    python -m courseutils.grading collect   --quiz NN_slug --zip LMS.zip [--dry-run] [--names CSV] [--pattern RE]
    python -m courseutils.grading autograde [--quiz all|NN_slug] [--student ID] [--force] [--workers N]
                                            [--sandbox auto|off|bwrap|docker|podman]
    python -m courseutils.grading feedback  [--quiz all|NN_slug] [--student ID]
    python -m courseutils.grading grades    [--out FILE] [--lms canvas|moodle]
                                        # grades.csv, grades_by_question.csv, grades_<lms>.csv, item_stats.csv/.png
    python -m courseutils.grading audit     [--quiz all|NN_slug] [--no-types] # balance, repeats, leaks, types

Submission times, quiz ids and LMS zips are read by :mod:`courseutils.grading.submissions`.
Parsing quiz notebooks and building the instant-feedback keys live in
:mod:`courseutils.grading.quiz_keys`; the nbgrader preprocessors the course configures live in
:mod:`courseutils.grading.nbgrader_plugins`. Both are re-exported here. Exam variants are
built by :mod:`courseutils.grading.exam` and released by :func:`release_exam`. Autograding executes
student code: each student's kernel runs in a bubblewrap sandbox (:mod:`courseutils.grading.sandbox`)
where bubblewrap works, otherwise with a warning of what is not protected (docs/INSTRUCTORS.md).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.utils import is_solution

from ..core.errors import CourseError
from ..core.io import atomic_path
from . import audit as quiz_audit, exam as quiz_exam, item_stats
from .givens import read_secrets
from .nbgrader_plugins import HideTestOutputs, drop_mathjax, InstantiateGivens, QuizExecute, StripQuizMetadata, nbgrader_env
from .sandbox import Limits, SandboxKernel
from .sandbox_choice import MODES as SANDBOX_MODES, resolve as resolve_sandbox, sandbox_kernel
from .submissions import (DEFAULT_PATTERN, STUDENT_ID, ZipSubmission, check_quiz, check_student, file_time,
                          parse_time, plan_zip, read_names, timestamp_text)
from .quiz_keys import (Question, _grade_id, _read, _select, _source_path, build_key, course_root, course_root_origin,
                        execute_solutions, is_exam_variant, key_in_sync, parse_quiz, quiz_ids, source_digest,
                        write_key)

__all__ = [
    "Question", "course_root", "quiz_ids", "load_config", "parse_quiz", "source_digest",
    "execute_solutions", "build_key", "write_key", "key_in_sync", "release", "release_exam", "read_roster",
    "student_copies", "collect", "autograde", "default_workers",
    "feedback", "export_grades", "export_lms", "grade_rows", "collect_zip", "read_failures", "failure_reason",
    "export_item_stats", "scores", "question_scores", "solution_submission", "time_autograde",
    "wrong_answer_source", "sample_submissions", "time_class_autograde",
    "QuizExecute", "HideTestOutputs", "StripQuizMetadata", "InstantiateGivens", "main",
]

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
# Seconds an autograde worker waits for another worker's write to the SQLite gradebook
# (SQLite's own default, 5 s, can run out on a loaded machine; see _autograde_api).
GRADEBOOK_BUSY_TIMEOUT = 600


def load_config(root: str | os.PathLike | None = None, timeout: int | None = None,
                total_timeout: int | None = None, secret_file: str | os.PathLike | None = None):
    """nbgrader's configuration: ``nbgrader_config.py`` with the root (and limits) set.

    ``secret_file``: an exam secret for :class:`InstantiateGivens` (release draws new givens).
    """
    from traitlets.config.loader import PyFileConfigLoader

    root = course_root(root)
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    cfg.CourseDirectory.root = str(root)
    if timeout is not None:
        cfg.Execute.timeout = int(timeout)
    if total_timeout is not None:
        cfg.QuizExecute.total_timeout = int(total_timeout)
    if secret_file is not None:
        cfg.InstantiateGivens.secret_file = str(secret_file)
    cfg.HideTestOutputs.course_root = str(root)  # feedback reads the hints from source/
    return cfg


def _api(root: Path, **limits):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cfg = load_config(root, **limits)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


# --------------------------------------------------------------------------- nbgrader steps
def _result(result: dict, what: str) -> str:
    if not result.get("success"):
        raise CourseError(f"{what} failed:\n{result.get('error', '')}\n{result.get('log', '')}")
    return result.get("log", "")


def release(quiz: str = "all", root: str | os.PathLike | None = None,
            secret_file: str | os.PathLike | None = None) -> list[Path]:
    """Generate the student versions ``release/<quiz>/<quiz>.ipynb`` (and the gradebook entries).

    ``secret_file`` (exam plumbing, see :mod:`courseutils.grading.givens`): a quiz with a
    givens cell is released with givens drawn from the secret in that file.
    """
    root = course_root(root)
    api = _api(root, secret_file=secret_file)
    out = []
    for q in _select(quiz, root):  # "all": the self-study quizzes; a named exam variant is accepted too
        with nbgrader_env():
            _result(api.generate_assignment(q, force=True, create=True), f"release of {q}")
        out.append(root / "release" / q / f"{q}.ipynb")
    return out


def read_roster(path: str | os.PathLike) -> list[str]:
    """Student ids, one per line (blank lines and ``#`` comments skipped), each a valid id, no repeats."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CourseError(f"roster={str(path)!r} cannot be read ({exc})") from exc
    students = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    bad = [s for s in students if not STUDENT_ID.fullmatch(s)]
    if bad:
        raise CourseError(f"roster={str(path)!r}: ids {bad[:5]} are not valid; use letters, digits, '_', '-', '.' or '@'")
    if len(set(students)) != len(students):
        raise CourseError(f"roster={str(path)!r} lists a student twice")
    if not students:
        raise CourseError(f"roster={str(path)!r} lists no student")
    return students


def _write_if_new(path: Path, text: str, what: str) -> None:
    """Write ``text`` to ``path`` atomically; refuse to change an existing file with other content."""
    if path.exists() and path.read_text(encoding="utf-8") != text:
        raise CourseError(f"{path} exists with other content ({what}); students may already rely on it. "
                          f"Move it away first if you really mean to replace it")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def release_exam(secret_file: str | os.PathLike, quiz: str = "all", root: str | os.PathLike | None = None,
                 roster: str | os.PathLike | None = None) -> dict[str, list[Path]]:
    """Release exam variants: one nbgrader assignment ``NN_slug_exam_K`` per secret and quiz.

    ``secret_file`` holds one secret per line (see :func:`courseutils.grading.givens.read_secrets`);
    the K-th secret gives variant K (:func:`courseutils.grading.exam.build_variant`: givens
    drawn from the secret, options shuffled, no check cells, no key). Each variant's
    instructor version is written to ``source/NN_slug_exam_K/`` (git-ignored), then released
    like any quiz to ``release/NN_slug_exam_K/``. Rewriting a variant that already has
    submissions with other content is refused (a changed secret file would change the exam).

    ``roster`` (one student id per line): also write ``exam_variants.csv`` (student, quiz,
    variant, assignment), student number ``i`` (0-based, in roster order) getting variant
    ``i mod K + 1``, so the variants are shared out evenly and the mapping is reproducible.
    Returns ``{quiz: [released notebook of variant 1, 2, ...]}``.
    """
    root = course_root(root)
    secrets = read_secrets(str(secret_file))
    students = read_roster(roster) if roster is not None else None
    quizzes = [q for q in _select(quiz, root) if not is_exam_variant(q)]
    out: dict[str, list[Path]] = {}
    for q in quizzes:
        source = _read(_source_path(q, root))
        out[q] = []
        for k, secret in enumerate(secrets, 1):
            variant = quiz_exam.build_variant(source, q, secret, k)
            path = _source_path(variant.assignment, root)
            text = nbformat.writes(variant.notebook)
            submitted = list((root / "submitted").glob(f"*/{variant.assignment}")) if (root / "submitted").is_dir() else []
            if path.exists() and path.read_text(encoding="utf-8") != text and submitted:
                raise CourseError(f"{variant.assignment} already has {len(submitted)} submission(s) and this secret "
                                  f"file gives it other content; use the secret file the exam was released with")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            out[q] += release(variant.assignment, root)
    if students is not None:
        rows = ["student,quiz,variant,assignment"]
        for i, student in enumerate(students):
            k = i % len(secrets) + 1
            rows += [f"{student},{q},{k},{quiz_exam.variant_id(q, k)}" for q in quizzes]
        _write_if_new(root / "exam_variants.csv", "\n".join(rows) + "\n", "the students' exam variants")
    return out


def student_copies(quiz: str = "all", root: str | os.PathLike | None = None,
                   out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Write answer-free student versions to ``<root>/student/<quiz>/<quiz>.ipynb`` (committed to git).

    The folder depth matches ``source/`` and ``release/``, so a quiz's relative link to its
    lesson works from every copy.

    They are nbgrader's release output, generated in a temporary copy of the course root
    (so the real gradebook is untouched). Lessons link to them, so a self-learner on Colab
    or on GitHub never opens the instructor version with its solutions.
    """
    import shutil
    import tempfile

    root = course_root(root)
    out_dir = Path(out_dir) if out_dir is not None else root / "student"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "course"
        shutil.copytree(root, work, ignore=shutil.ignore_patterns("release", "submitted", "autograded", "feedback",
                                                                  "student", "gradebook.db", "*.csv", "*_exam_*"))
        for released in release(quiz, work):
            target = out_dir / released.parent.name / released.name
            target.parent.mkdir(exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(released, tmp)
            written.append(target)
    return written


def collect(quiz: str, student: str, notebook: str | os.PathLike,
            root: str | os.PathLike | None = None, timestamp: str | dt.datetime | None = None) -> Path:
    """Copy a student's notebook to ``submitted/<student>/<quiz>/<quiz>.ipynb`` with its submission time.

    ``timestamp.txt`` gets the time the student submitted: ``timestamp`` (ISO 8601 text or a
    datetime; without a zone, UTC) when given, else the notebook file's modification time
    (keep it when downloading: ``cp -p``, the LMS's zip, :func:`collect_zip`). nbgrader
    compares it with the quiz's due date. A notebook of another quiz is refused
    (:func:`courseutils.grading.submissions.check_quiz`), and an existing submission is never
    overwritten: move or delete it yourself first.
    """
    root = course_root(root)
    _select(quiz, root, exams=True)
    check_student(student)
    src = Path(notebook)
    if not src.is_file():
        raise CourseError(f"notebook={str(notebook)!r} is not a file")
    try:
        nb = nbformat.read(str(src), as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a file that is not a notebook
        raise CourseError(f"notebook={str(notebook)!r} is not a readable notebook ({exc})") from exc
    check_quiz(nb, quiz, f"notebook={str(notebook)!r}")
    if timestamp is None:
        when = file_time(src)
    else:
        when = timestamp if isinstance(timestamp, dt.datetime) else parse_time(timestamp)
    return _store(root, quiz, student, src.read_bytes(), when)


def _store(root: Path, quiz: str, student: str, data: bytes, when: dt.datetime) -> Path:
    """Write one submission and its ``timestamp.txt`` (each atomically); never overwrite."""
    dest_dir = root / "submitted" / student / quiz
    dest = dest_dir / f"{quiz}.ipynb"
    if dest.exists():
        raise CourseError(f"{dest} exists: a submission is never overwritten; remove it first to replace it")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest_dir / "timestamp.txt") as tmp:
        tmp.write_text(timestamp_text(when), encoding="utf-8")
    with atomic_path(dest) as tmp:  # an interrupted copy must not pass for a submission
        tmp.write_bytes(data)
    return dest


def collect_zip(quiz: str, zip_path: str | os.PathLike, root: str | os.PathLike | None = None,
                pattern: str = DEFAULT_PATTERN, names: str | os.PathLike | None = None,
                dry_run: bool = False, tz: str = "UTC") -> list[ZipSubmission]:
    """Collect every notebook of an LMS download (a zip of files named by student) into ``quiz``.

    :func:`courseutils.grading.submissions.plan_zip` maps each entry to a student
    (``pattern``, ``names``: a CSV ``name,student``); each submission's time is the zip
    entry's time (``tz``: the zone of entries without a UTC time, an IANA name such as
    ``Europe/Berlin``). A student who already has a submission is skipped (never
    overwritten). ``dry_run``: only the plan. Returns the plan; entries with a ``problem``
    were not collected, the others were (unless ``dry_run`` or ``note`` says skipped).
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    root = course_root(root)
    _select(quiz, root, exams=True)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CourseError(f"tz={tz!r} is not a time zone; use an IANA name such as 'UTC' or 'Europe/Berlin'") from exc
    plan = plan_zip(zip_path, quiz, pattern, read_names(names) if names is not None else None, zone)
    for item in plan:
        if item.problem or item.note:
            continue
        dest = root / "submitted" / item.student / quiz / f"{quiz}.ipynb"
        if dest.exists():
            item.note = f"{dest.relative_to(root)} exists: skipped (never overwritten)"
        elif not dry_run:
            with zipfile.ZipFile(zip_path) as archive:
                _store(root, quiz, item.student, archive.read(item.entry), item.time)
    return plan


def _gradebook(root: Path):
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    cfg = load_config(root)
    with nbgrader_env():  # opening a gradebook runs the alembic script
        return Gradebook(CourseDirectory(config=cfg).db_url, cfg.CourseDirectory.course_id)


def _released(quiz: str, root: Path) -> bool:
    """Whether ``quiz`` has a release folder and gradebook entries (autograding needs both)."""
    from nbgrader.api import MissingEntry

    if not (root / "release" / quiz).is_dir():
        return False
    with _gradebook(root) as gb:
        try:
            gb.find_assignment(quiz)
        except MissingEntry:
            return False
    return True


def _per_submission(quiz: str, root: str | os.PathLike | None, read) -> dict:
    """``{student: read(submission)}`` for every submission of ``quiz`` in the gradebook."""
    from nbgrader.api import MissingEntry

    with _gradebook(course_root(root)) as gb:
        try:
            assignment = gb.find_assignment(quiz)
        except MissingEntry:
            return {}
        return {sub.student.id: read(sub) for sub in assignment.submissions}


def scores(quiz: str, root: str | os.PathLike | None = None) -> dict[str, tuple[float, float]]:
    """``{student: (score, max_score)}`` of ``quiz`` from the gradebook."""
    return _per_submission(quiz, root, lambda sub: (float(sub.score), float(sub.max_score)))


def question_scores(quiz: str, root: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """``{student: {grade_id: score}}`` of ``quiz``'s graded test cells, from the gradebook."""
    return _per_submission(quiz, root, lambda sub: {g.name: float(g.score) for nb in sub.notebooks
                                                    for g in nb.grades})


def default_workers() -> int:
    """How many students :func:`autograde` grades at once by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # Linux: respects taskset and container limits
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _autograde_api(root: Path, timeout: int | None, total_timeout: int | None, box: SandboxKernel | None = None):
    """nbgrader's API for autograding; several of them may write the SQLite gradebook at once.

    SQLite lets one process write at a time and makes the others wait up to a busy timeout,
    5 s by default, after which nbgrader's write fails ("database is locked") and nbgrader
    aborts the run. Parallel workers write distinct students' rows in short transactions,
    so waiting is always enough: the timeout is raised to :data:`GRADEBOOK_BUSY_TIMEOUT`.
    A ``db_url`` set in ``nbgrader_config.py`` (another database) is left alone. With ``box``,
    the kernel is the sandboxed one of a :class:`~courseutils.grading.sandbox.SandboxKernel`.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cfg = load_config(root, timeout=timeout, total_timeout=total_timeout)
    if "db_url" not in cfg.CourseDirectory:
        cfg.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}?timeout={GRADEBOOK_BUSY_TIMEOUT}"
    if box is not None:
        box.configure(cfg)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


def _autograde_student(root: Path, quiz: str, student: str, force: bool, timeout: int | None,
                       total_timeout: int | None, sandbox: str = "off") -> dict:
    """One student's submission of ``quiz`` through nbgrader's autograde (runs in a worker process).

    ``sandbox`` ``"bwrap"``, ``"docker"`` or ``"podman"``: the kernel runs in a sandbox of its own
    (:mod:`courseutils.grading.sandbox`, :mod:`courseutils.grading.sandbox_container`).
    Returns nbgrader's result: ``{"success": bool, "log": str, "error": str}``.
    """
    with contextlib.ExitStack() as stack:
        box = sandbox_kernel(sandbox, root, Limits.from_config(load_config(root)))
        if box is not None:
            stack.enter_context(box)
        api = _autograde_api(root, timeout, total_timeout, box)
        stack.enter_context(nbgrader_env(**(box.env if box else {})))  # also in a worker: caches nbgrader's schema version
        # nbgrader globs submitted/<student>/<quiz>; escaped, a folder name with glob characters
        # ("ada[2]", which nbgrader cannot grade anyway) never matches another student's folder
        return api.autograde(quiz, glob.escape(student), force=force, create=True)


def _grade_students(root: Path, quiz: str, students: list[str], force: bool, timeout: int | None,
                    total_timeout: int | None, workers: int, progress: bool, sandbox: str = "off") -> dict[str, dict]:
    """``{student: nbgrader's result}``, grading ``workers`` students at once.

    One worker grades in this process; more start that many worker processes, each running
    nbgrader's autograde on one student at a time (the next free worker takes the next
    student). Executing a notebook keeps about one core busy (the kernel, then nbgrader's
    gradebook writes), so one worker per CPU keeps the CPUs busy. A student's code runs in
    the kernel, not in the worker; if a worker process dies all the same (out of memory),
    the students it had not graded are reported failed with the error, and a second run
    (without ``--force``) grades just those.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    args = [(root, quiz, s, force, timeout, total_timeout, sandbox) for s in students]
    bar = tqdm(total=len(students), desc=f"autograde {quiz}", unit="submission", disable=not progress)
    results: dict[str, dict] = {}
    if workers == 1 or len(students) == 1:
        for a in args:
            results[a[2]] = _autograde_student(*a)
            bar.update()
    else:
        # "spawn": fresh interpreters, not forks of this one (nbgrader and zmq are not fork-safe)
        with nbgrader_env(), ProcessPoolExecutor(min(workers, len(students)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_autograde_student, *a): a[2] for a in args}
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except Exception as exc:  # the worker process died (BrokenProcessPool) or could not be started
                    results[futures[future]] = {"success": False, "log": "", "error": (
                        f"worker failed: {type(exc).__name__}: {exc}\n(a script that calls autograde with "
                        "workers > 1 must do it under `if __name__ == '__main__':`, Python's rule for process pools)")}
                bar.update()
    bar.close()
    return results


def autograde(quiz: str = "all", root: str | os.PathLike | None = None, student: str = "*",
              force: bool = False, timeout: int | None = None, total_timeout: int | None = None,
              workers: int | None = None, progress: bool = True, sandbox: str = "auto") -> dict[str, dict]:
    """Autograde ``submitted/<student>/<quiz>/``: nbgrader's autograde, one run per student.

    ``workers`` students are graded at once (default :func:`default_workers`, one per CPU),
    each in its own process (see :func:`_grade_students`); 1 grades them one after another
    in this process. The scores are the same either way: every student gets nbgrader's own
    autograde in a fresh kernel, and the workers share the gradebook through SQLite's locking
    (:func:`_autograde_api`).

    ``sandbox``: ``"auto"`` (default) runs each student's kernel in its own bubblewrap
    sandbox where bubblewrap works, otherwise unprotected with a
    :class:`~courseutils.grading.sandbox.SandboxWarning`; ``"bwrap"`` insists on the sandbox,
    ``"off"`` runs without it (warning too); ``"docker"`` and ``"podman"`` run each kernel in a
    container of that engine instead (:mod:`courseutils.grading.sandbox_container`). Limits come
    from ``c.SandboxLimits`` in ``nbgrader_config.py`` (see :mod:`courseutils.grading.sandbox`).

    Returns ``{quiz: {"graded": {student: (score, max)}, "failed": [student, ...],
    "reasons": {student: one line}, "skipped": [student, ...], "manual": [student, ...],
    "log": str, "logs": {student: str}, "log_file": Path | None}}``. A submission nbgrader
    cannot process (kernel died, unreadable notebook), or a notebook of another quiz
    (refused before grading, see :func:`courseutils.grading.submissions.check_quiz`), is
    listed in ``failed`` with a one-line reason, and the others are still graded. ``skipped``:
    graded before and unchanged since (nbgrader skips them unless ``force``); ``manual``:
    regraded with ``force`` while the gradebook holds manual grades for them (nbgrader keeps
    a manual score over the new automatic one). Each quiz's full log goes to
    ``<root>/logs/autograde_<quiz>_<time>.log``; the failures are recorded in
    ``<root>/logs/failures.json`` for :func:`export_grades`. Submissions are only read,
    never changed.
    """
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CourseError(f"workers={workers!r}: use a whole number >= 1 (students graded at once)")
    root = course_root(root)
    sandbox = resolve_sandbox(sandbox, root, Limits.from_config(load_config(root)))
    report: dict[str, dict] = {}
    for q in _select(quiz, root, exams=True):
        submitted = sorted(p.parent.name for p in (root / "submitted").glob(f"{student}/{q}")
                           if p.is_dir()) if (root / "submitted").is_dir() else []
        if not submitted:
            report[q] = {"graded": {}, "failed": [], "reasons": {}, "skipped": [], "manual": [],
                         "log": "no submissions", "logs": {}, "log_file": None}
            continue
        refused = _wrong_quiz(root, q, submitted)
        to_grade = [s for s in submitted if s not in refused]
        if to_grade and not _released(q, root):
            release(q, root)
        autograded = {s: root / "autograded" / s / q / f"{q}.ipynb" for s in submitted}
        before = {s: autograded[s].stat().st_mtime_ns if autograded[s].is_file() else None for s in to_grade}
        manual = _manual_grades(root, q, to_grade) if force else []
        results = _grade_students(root, q, to_grade, force, timeout, total_timeout, workers, progress, sandbox) if to_grade else {}
        done = {s for s in to_grade if results[s].get("success") and autograded[s].is_file()}
        graded = {s: v for s, v in scores(q, root).items() if s in done}
        reasons = {s: failure_reason(results[s]) for s in to_grade if s not in done} | refused
        logs = {s: results[s].get("log", "") + results[s].get("error", "") if s in results else refused[s] + "\n"
                for s in submitted}
        log = "".join(f"--- {s}\n{logs[s]}" for s in submitted)
        report[q] = {"graded": graded, "failed": sorted(reasons), "reasons": reasons,
                     "skipped": sorted(s for s in done if before[s] is not None
                                       and autograded[s].stat().st_mtime_ns == before[s]),
                     "manual": manual, "log": log, "logs": logs,
                     "log_file": _write_log(root, q, log), }
        _record_failures(root, q, done, reasons)
    return report


def _wrong_quiz(root: Path, quiz: str, students: list[str]) -> dict[str, str]:
    """``{student: reason}`` for submissions of ``quiz`` that are notebooks of another quiz."""
    refused = {}
    for s in students:
        path = root / "submitted" / s / quiz / f"{quiz}.ipynb"
        try:
            check_quiz(nbformat.read(str(path), as_version=4), quiz, f"submitted/{s}/{quiz}/{path.name}")
        except CourseError as exc:
            refused[s] = str(exc)
        except Exception:  # missing or unreadable: nbgrader reports it, with its own reason
            pass
    return refused


def failure_reason(result: dict) -> str:
    """One line saying why nbgrader could not grade a submission, from its result's log and error."""
    text = f"{result.get('log', '')}\n{result.get('error', '')}"
    if "became unresponsive" in text:
        return ("the kernel stopped answering (a loop that ignores interrupts, or memory exhausted); "
                "grade it by hand or fix the loop and regrade with --force")
    if "No submitted file" in text or "No notebooks were matched" in text:
        return "no notebook named <quiz>.ipynb in the submission folder"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):  # the last exception raised, e.g. "NotJSONError: Notebook does not appear to be JSON"
        if (re.match(r"^[\w.]+(Error|Exception|Exit)\b:?", line) and "Traceback" not in line
                and "NbGraderException" not in line):  # nbgrader's own closing line says nothing
            return line[:300]
    errors = [line for line in lines if "[ERROR]" in line or "ERROR" in line.split(" ")[:3]]
    if errors:
        return errors[0][:300]
    return (lines[-1][:300] if lines else "nbgrader reported a failure without a log")


def _write_log(root: Path, quiz: str, log: str) -> Path:
    """Write one autograde run's full log to ``<root>/logs/autograde_<quiz>_<UTC time>.log``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    path = root / "logs" / f"autograde_{quiz}_{stamp}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(log, encoding="utf-8")
    return path


def read_failures(root: str | os.PathLike | None = None) -> dict[str, dict[str, str]]:
    """``{quiz: {student: reason}}`` of the submissions whose last autograde failed."""
    path = course_root(root) / "logs" / "failures.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record_failures(root: Path, quiz: str, graded: set[str], failed: dict[str, str]) -> None:
    """Update ``logs/failures.json``: ``failed`` students of ``quiz`` added, ``graded`` ones removed."""
    record = read_failures(root)
    entry = {s: r for s, r in record.get(quiz, {}).items() if s not in graded} | failed
    if entry:
        record[quiz] = entry
    else:
        record.pop(quiz, None)
    path = root / "logs" / "failures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _manual_grades(root: Path, quiz: str, students: list[str]) -> list[str]:
    """Students among ``students`` whose submission of ``quiz`` has a manual score in the gradebook."""
    manual = _per_submission(quiz, root, lambda sub: any(g.manual_score is not None for nb in sub.notebooks
                                                         for g in nb.grades))
    return sorted(s for s in students if manual.get(s))


def feedback(quiz: str = "all", root: str | os.PathLike | None = None, student: str = "*") -> list[Path]:
    """HTML feedback ``feedback/<student>/<quiz>/<quiz>.html`` without hidden tests.

    Raises :class:`CourseError` when there is nothing to give feedback on: an unknown
    ``student`` (no folder under ``submitted/``), a named ``quiz`` never autograded (for
    that student), or no autograded submission at all. A failing question shows its number,
    title and hint (:class:`courseutils.grading.nbgrader_plugins.HideTestOutputs`).
    """
    root = course_root(root)
    quizzes = _select(quiz, root, exams=True)
    if student != "*":
        check_student(student)
        if not (root / "submitted" / student).is_dir() and not (root / "autograded" / student).is_dir():
            raise CourseError(f"student={student!r} has no submission under {root / 'submitted'}")
    api = _api(root)
    out: list[Path] = []
    for q in quizzes:
        if not list((root / "autograded").glob(f"{glob.escape(student) if student != '*' else '*'}/{q}")):
            if quiz != "all":
                raise CourseError(f"quiz={q!r} has no autograded submission{'' if student == '*' else f' of {student}'}"
                                  f" under {root / 'autograded'}; run autograde first")
            continue
        with nbgrader_env():
            _result(api.generate_feedback(q, glob.escape(student) if student != "*" else student, force=True),
                    f"feedback of {q}")
        pages = sorted((root / "feedback").glob(f"{glob.escape(student) if student != '*' else '*'}/{q}/*.html"))
        for page in pages:  # the math is typeset already (RenderMath): no MathJax from a CDN
            text = page.read_text(encoding="utf-8")
            if drop_mathjax(text) != text:
                mode = page.stat().st_mode
                with atomic_path(page) as tmp:
                    tmp.write_text(drop_mathjax(text), encoding="utf-8")
                page.chmod(mode)
        out += pages
    if not out:
        raise CourseError(f"no autograded submission under {root / 'autograded'}: nothing to give feedback on; "
                          f"run autograde first")
    return out


GRADE_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                 "status", "reason", "raw_score", "seconds_late", "late_submission_penalty", "score",
                 "max_score", "manual_grades"]
QUESTION_COLUMNS = ["assignment", "student_id", "status", "question", "score", "max_score", "manual"]
# Column names the LMSs' grade import reads: Canvas matches students by "SIS User ID" (or
# "SIS Login ID"), Moodle by "ID number", "Username" or "Email address"; one column per quiz.
LMS_COLUMNS = {"canvas": ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"],
               "moodle": ["First name", "Last name", "ID number", "Email address"]}


def grade_rows(root: str | os.PathLike | None = None) -> tuple[list[dict], list[dict]]:
    """Every (quiz, student) of the gradebook, and every graded question: ``(rows, question_rows)``.

    A student is each one in the gradebook (``nbgrader db student import``) or with a folder
    under ``submitted/``. ``status``: ``graded`` (autograded), ``failed`` (the last autograde
    failed; ``reason`` says why, see :func:`autograde`), ``ungraded`` (submitted, not yet
    autograded) or ``missing`` (nothing submitted). ``seconds_late`` and
    ``late_submission_penalty`` come from nbgrader (the submission's ``timestamp.txt`` against
    the quiz's due date; ``score`` = ``raw_score`` - penalty, at least 0); ``manual_grades``
    counts questions whose score was set by hand (nbgrader keeps them over regrades).
    """
    from nbgrader.api import MissingEntry

    root = course_root(root)
    failures = read_failures(root)
    rows, questions = [], []
    with _gradebook(root) as gb:
        people = {st.id: st for st in gb.students}
        submitted_dir = root / "submitted"
        folders = {p.name for p in submitted_dir.iterdir() if p.is_dir()} if submitted_dir.is_dir() else set()
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            q = assignment.name
            for sid in sorted(set(people) | folders):
                person = people.get(sid)
                row = {"assignment": q, "duedate": assignment.duedate or "", "student_id": sid,
                       "last_name": getattr(person, "last_name", None) or "",
                       "first_name": getattr(person, "first_name", None) or "",
                       "email": getattr(person, "email", None) or "", "max_score": float(assignment.max_score),
                       "timestamp": "", "reason": "", "raw_score": 0.0, "seconds_late": 0.0,
                       "late_submission_penalty": 0.0, "score": 0.0, "manual_grades": 0}
                try:
                    sub = gb.find_submission(q, sid)
                except MissingEntry:
                    sub = None
                handed_in = (submitted_dir / sid / q).is_dir()
                if sid in failures.get(q, {}):
                    row["status"], row["reason"] = "failed", failures[q][sid]
                elif sub is not None and (root / "autograded" / sid / q / f"{q}.ipynb").is_file():
                    row["status"] = "graded"
                elif handed_in:
                    row["status"] = "ungraded"
                else:
                    row["status"] = "missing"
                if sub is not None and row["status"] == "graded":
                    grades = [g for nb in sub.notebooks for g in nb.grades]
                    penalty = float(sub.late_submission_penalty or 0.0)
                    row.update(timestamp=sub.timestamp or "", raw_score=float(sub.score),
                               seconds_late=float(sub.total_seconds_late or 0.0), late_submission_penalty=penalty,
                               score=max(0.0, float(sub.score) - penalty),
                               manual_grades=sum(g.manual_score is not None for g in grades))
                    questions += [{"assignment": q, "student_id": sid, "status": row["status"], "question": g.name,
                                   "score": float(g.score), "max_score": float(g.max_score),
                                   "manual": int(g.manual_score is not None)}
                                  for g in sorted(grades, key=lambda g: g.name)]
                elif sub is not None and sub.timestamp:
                    row["timestamp"] = sub.timestamp
                rows.append(row)
    return rows, questions


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path


def export_grades(out: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
                  by_question: str | os.PathLike | None = None) -> Path:
    """Write ``grades.csv`` (one row per quiz and student, :func:`grade_rows`) and ``grades_by_question.csv``.

    ``out`` defaults to ``<root>/grades.csv``; ``by_question`` (one row per graded question:
    ``assignment, student_id, status, question, score, max_score, manual``) to
    ``grades_by_question.csv`` next to it. The first columns are nbgrader's own CSV export's.
    Returns the path of ``grades.csv``.
    """
    root = course_root(root)
    final = Path(out) if out is not None else root / "grades.csv"
    rows, questions = grade_rows(root)
    _write_csv(Path(by_question) if by_question is not None else final.with_name("grades_by_question.csv"),
               QUESTION_COLUMNS, questions)
    return _write_csv(final, GRADE_COLUMNS, rows)


def export_lms(lms: str = "canvas", out: str | os.PathLike | None = None,
               root: str | os.PathLike | None = None) -> Path:
    """Totals for an LMS's grade import: one row per student, one column per quiz (after late penalties).

    ``lms``: ``canvas`` (columns ``Student, ID, SIS User ID, SIS Login ID, Section``, the
    student id in both SIS columns; Canvas's "Import" matches on them) or ``moodle``
    (``First name, Last name, ID number, Email address``; map "ID number" or "Email
    address" to the user in Moodle's CSV grade import). A quiz column is named after the
    quiz with its points, ``00_setup_and_tour (15)``; a missing or failed quiz is left
    empty, so the LMS keeps whatever it has. Default ``out``: ``<root>/grades_<lms>.csv``.
    """
    if lms not in LMS_COLUMNS:
        raise CourseError(f"lms={lms!r}: allowed: {sorted(LMS_COLUMNS)}")
    root = course_root(root)
    rows, _ = grade_rows(root)
    quizzes = {r["assignment"]: r["max_score"] for r in rows}
    columns = {q: f"{q} ({m:g})" for q, m in quizzes.items()}
    table: dict[str, dict] = {}
    for r in rows:
        person = table.setdefault(r["student_id"], {
            "Student": ", ".join(x for x in (r["last_name"], r["first_name"]) if x) or r["student_id"],
            "ID": "", "SIS User ID": r["student_id"], "SIS Login ID": r["student_id"], "Section": "",
            "First name": r["first_name"], "Last name": r["last_name"], "ID number": r["student_id"],
            "Email address": r["email"]})
        person[columns[r["assignment"]]] = f"{r['score']:g}" if r["status"] == "graded" else ""
    final = Path(out) if out is not None else root / f"grades_{lms}.csv"
    return _write_csv(final, LMS_COLUMNS[lms] + list(columns.values()), [table[s] for s in sorted(table)])


def export_item_stats(root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                      plot: str | os.PathLike | None = None) -> list[Path]:
    """Per-question statistics of every autograded quiz: ``item_stats.csv`` and ``item_stats.png``.

    Scores come from the gradebook, the chosen options from ``autograded/`` (see
    :mod:`courseutils.grading.item_stats`). Returns the files written; none when nothing
    has been autograded yet.
    """
    root = course_root(root)
    stats = []
    for q in quiz_ids(root, exams=True):
        per_question = question_scores(q, root)
        if per_question:
            stats += item_stats.quiz_item_stats(q, per_question, root)
    if not stats:
        return []
    csv_path = Path(out) if out is not None else root / "item_stats.csv"
    png_path = Path(plot) if plot is not None else csv_path.with_suffix(".png")
    return item_stats.write_item_stats(stats, csv_path, png_path)


# --------------------------------------------------------------------------- submissions and timing
def _strip_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in SOLUTION_MARKERS)


def solution_submission(released, source) -> Any:
    """A released notebook with every answer cell filled in from the instructor version."""
    answers = {_grade_id(c): c["source"] for c in source["cells"] if is_solution(c)}
    nb = copy.deepcopy(released)
    for cell in nb["cells"]:
        if is_solution(cell) and _grade_id(cell) in answers:
            cell["source"] = _strip_solution_markers(answers[_grade_id(cell)])
    return nb


def time_autograde(quiz: str = "00_setup_and_tour", root: str | os.PathLike | None = None) -> float:
    """Seconds nbgrader takes to autograde one correct submission of ``quiz``.

    Works in a temporary copy of the course root (release, submit the solutions, autograde);
    raises :class:`CourseError` if the solutions do not score full marks.
    """
    root = course_root(root)
    _select(quiz, root)
    with tempfile.TemporaryDirectory(prefix="quiz-timing-") as tmp:
        work = Path(tmp) / "quizzes"
        work.mkdir()
        shutil.copy(root / "nbgrader_config.py", work)
        shutil.copytree(root / "source" / quiz, work / "source" / quiz)
        released = _read(release(quiz, work)[0])
        sub = work / "submitted" / "timing" / quiz
        sub.mkdir(parents=True)
        nbformat.write(solution_submission(released, _read(_source_path(quiz, work))), str(sub / f"{quiz}.ipynb"))
        start = time.perf_counter()
        report = autograde(quiz, work)[quiz]
        seconds = time.perf_counter() - start
        score = report["graded"].get("timing")
        if score is None or score[0] != score[1]:
            raise CourseError(f"time_autograde({quiz!r}): the solutions scored {score}; see the log:\n{report['log']}")
    return seconds


def wrong_answer_source(q: Question, answer: Any) -> str:
    """Source of an answer cell holding a plausible wrong answer to ``q`` (``answer``: the right one).

    A function question gets its ``wrong`` implementation from the quiz metadata, a choice
    its ``wrong`` letter (or the first other option), true/false the negation, and a number
    its ``wrong`` value or one at least 5 tolerances away.
    """
    if q.kind == "function":
        return q.meta["wrong"]
    if q.kind == "choice":
        value = q.meta.get("wrong") or next(o for o in q.meta["options"] if o != answer)
    elif q.kind == "bool":
        value = not answer
    else:
        value = q.meta.get("wrong", answer + max(5 * q.meta["tol"], abs(answer)))
    return f"{q.variable} = {float(value)!r}\n" if isinstance(value, float) else f"{q.variable} = {value!r}\n"


def sample_submissions(quiz: str, root: str | os.PathLike | None = None) -> dict[str, tuple[Any, int]]:
    """Three submissions of a released ``quiz`` with known scores: ``{name: (notebook, score)}``.

    ``solution`` answers everything right (15), ``partial`` answers the odd-numbered
    questions right and the others with plausible wrong answers (8), ``wrong`` answers
    everything wrong (0). Executes the instructor notebook once to learn the answers.
    """
    root = course_root(root)
    released_path = root / "release" / quiz / f"{quiz}.ipynb"
    if not released_path.is_file():
        raise CourseError(f"quiz={quiz!r} is not released under {root / 'release'}; run release first")
    questions, answers, _ = execute_solutions(quiz, root)
    released = _read(released_path)
    solution = solution_submission(released, _read(_source_path(quiz, root)))
    partial, wrong = copy.deepcopy(solution), copy.deepcopy(solution)
    for i, q in enumerate(questions):
        wrong.cells[q.answer_cell].source = wrong_answer_source(q, answers[q.qid])
        if i % 2 == 1:  # q02, q04, ...: wrong
            partial.cells[q.answer_cell].source = wrong_answer_source(q, answers[q.qid])
    return {"solution": (solution, len(questions)), "partial": (partial, (len(questions) + 1) // 2),
            "wrong": (wrong, 0)}


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (workers and kernels)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_class_autograde(quiz: str = "00_setup_and_tour", n: int = 200, workers: int | None = None,
                         root: str | os.PathLike | None = None, progress: bool = True, sandbox: str = "auto") -> dict:
    """Autograde a class of ``n`` submissions of ``quiz`` and time it (``make bench``).

    Works in a temporary copy of the course root: release, ``n`` submissions cycling through
    :func:`sample_submissions` (solution, partial, wrong), one :func:`autograde` call with
    ``workers``. Raises :class:`CourseError` if a submission fails or scores other than it
    should, so a fast but wrong run is never reported. Returns the seconds, submissions per
    minute, CPU seconds per submission (this process, the workers and the kernels), the rate
    those CPU seconds allow on an otherwise idle machine (``min(workers, CPUs)`` CPUs busy:
    60 · min(workers, CPUs) / CPU s per submission), and the load average before and after,
    since other work on a shared machine slows the wall time. ``sandbox`` as in :func:`autograde`;
    the result names the one used (with a sandbox the CPU seconds leave out the kernels:
    they are killed inside it, and their time never reaches this process).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CourseError(f"n={n!r}: use a whole number >= 1 (submissions to grade)")
    root = course_root(root)
    _select(quiz, root)
    workers = default_workers() if workers is None else workers
    with tempfile.TemporaryDirectory(prefix="class-timing-") as tmp:
        work = Path(tmp) / "quizzes"
        work.mkdir()
        shutil.copy(root / "nbgrader_config.py", work)
        shutil.copytree(root / "source" / quiz, work / "source" / quiz)
        release(quiz, work)
        samples = sample_submissions(quiz, work)
        kinds = list(samples)
        expected = {}
        for i in range(n):
            student, kind = f"student{i:04d}", kinds[i % len(kinds)]
            folder = work / "submitted" / student / quiz
            folder.mkdir(parents=True)
            nbformat.write(samples[kind][0], str(folder / f"{quiz}.ipynb"))
            expected[student] = float(samples[kind][1])
        sandbox = resolve_sandbox(sandbox, work, Limits.from_config(load_config(work)))
        load_before, cpu_before = os.getloadavg(), _cpu_seconds()
        start = time.perf_counter()
        report = autograde(quiz, work, workers=workers, progress=progress, sandbox=sandbox)[quiz]
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_before
        load_after = os.getloadavg()
        got = {s: score for s, (score, _) in report["graded"].items()}
        if report["failed"] or got != expected:
            wrong = sorted(s for s in expected if got.get(s) != expected[s])
            raise CourseError(f"time_class_autograde({quiz!r}): {len(wrong)} submissions scored wrong or failed "
                              f"(first: {wrong[:3]}, {[got.get(s) for s in wrong[:3]]} instead of "
                              f"{[expected[s] for s in wrong[:3]]}); log of the first:\n{report['logs'][wrong[0]][-3000:]}")
    return {"quiz": quiz, "submissions": n, "mix": {k: sum(1 for i in range(n) if kinds[i % len(kinds)] == k)
                                                     for k in kinds},
            "workers": workers, "cpus": default_workers(), "sandbox": sandbox, "seconds": round(seconds, 1),
            "submissions_per_minute": round(60 * n / seconds, 1),
            "cpu_seconds_per_submission": round(cpu / n, 2),
            # what the CPUs allow with nothing else running: each busy worker keeps one CPU busy
            "cpu_bound_submissions_per_minute": round(60 * min(workers, default_workers()) * n / cpu, 1),
            "load_average_before": round(load_before[0], 2), "load_average_after": round(load_after[0], 2)}


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=None, help="course root holding nbgrader_config.py and source/ (default: ./quizzes or . if it holds "
                             "nbgrader_config.py, else the quizzes/ next to the installed package; printed on stderr)")
    any_quiz = argparse.ArgumentParser(add_help=False)
    any_quiz.add_argument("--quiz", default="all", help="all (default) or one NN_slug")
    any_student = argparse.ArgumentParser(add_help=False)
    any_student.add_argument("--student", default="*", help="one student id (default: all)")
    p = argparse.ArgumentParser(prog="python -m courseutils.grading", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys", parents=[common, any_quiz], help="regenerate the instant-feedback keys (make quiz-keys)",
                       description="Execute each instructor notebook and write src/courseutils/data/quiz_keys/<quiz>.json.")
    k.add_argument("--check", action="store_true", help="only report keys that are out of date; exit 1 if any")
    r = sub.add_parser("release", parents=[common, any_quiz], help="write student versions to quizzes/release/",
                       description="nbgrader generate_assignment: solutions and hidden tests removed. With --exam, "
                                   "one variant per secret of --secret-file (givens drawn from the secret, options "
                                   "shuffled, no check cells, no keys), each released as assignment NN_slug_exam_K.")
    r.add_argument("--exam", action="store_true",
                   help="release exam variants instead of the self-study quizzes (needs --secret-file)")
    r.add_argument("--secret-file", default=None,
                   help="file with one exam secret per line (8+ characters each); secret K gives variant K. "
                        "Secrets are never taken on the command line, where ps and shell history show them")
    r.add_argument("--roster", default=None,
                   help="file with one student id per line: also write <root>/exam_variants.csv, "
                        "student i (0-based) -> variant i mod K + 1")
    sub.add_parser("students", parents=[common, any_quiz], help="write answer-free copies to quizzes/student/ (committed)",
                   description="Release each quiz in a temporary course copy and save quizzes/student/<quiz>/<quiz>.ipynb.")
    c = sub.add_parser("collect", parents=[common], help="copy one notebook, or a whole LMS zip, into quizzes/submitted/",
                       description="Copy NOTEBOOK to submitted/<student>/<quiz>/<quiz>.ipynb with its submission time "
                                   "(--timestamp, else the file's modification time); or, with --zip, every notebook "
                                   "of an LMS download (files named by student; the time of each zip entry). Never "
                                   "overwrites a submission; refuses a notebook of another quiz.")
    c.add_argument("--quiz", required=True, help="the quiz NN_slug (or exam variant NN_slug_exam_K)")
    c.add_argument("--student", default=None, help="student id (letters, digits, _ - . @); not with --zip")
    c.add_argument("--timestamp", default=None,
                   help="submission time, ISO 8601 ('2026-12-01 17:05:00' is UTC, or with +01:00); "
                        "default: the notebook file's modification time")
    c.add_argument("--zip", default=None, help="an LMS download: a zip of notebooks named by student")
    c.add_argument("--dry-run", action="store_true", help="with --zip: list who maps to which file, write nothing")
    c.add_argument("--pattern", default=DEFAULT_PATTERN,
                   help="with --zip: regular expression with a group (?P<student>...) searched in each entry's "
                        "path without .ipynb (default: up to the first '_' or '/', as Canvas and Moodle name files)")
    c.add_argument("--names", default=None,
                   help="with --zip: CSV with columns name,student mapping LMS names (e.g. 'Ada Lovelace') to ids")
    c.add_argument("--tz", default="UTC",
                   help="with --zip: time zone of entries that carry no UTC time (IANA name; default UTC)")
    c.add_argument("notebook", nargs="?", default=None, help="the student's .ipynb file (not with --zip)")
    a = sub.add_parser("autograde", parents=[common, any_quiz, any_student], help="grade quizzes/submitted/ (runs student code!)",
                       description="nbgrader autograde, one run per student, several students at once (--workers). "
                                   "Runs student code: each kernel in a bubblewrap sandbox where available (--sandbox).")
    a.add_argument("--force", action="store_true", help="regrade submissions that were already autograded")
    a.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py, 60)")
    a.add_argument("--workers", type=int, default=None,
                   help=f"students graded at once, each in its own process (default: the CPUs here, {default_workers()}; "
                        "1: one after another in this process)")
    a.add_argument("--sandbox", choices=SANDBOX_MODES, default="auto",
                   help="auto (default): each student's kernel in a bubblewrap sandbox when bwrap works here, else "
                        "unprotected with a warning; bwrap: fail without it; docker, podman: a container per kernel "
                        "instead; off: no sandbox")
    sub.add_parser("feedback", parents=[common, any_quiz, any_student], help="HTML feedback without hidden tests in quizzes/feedback/",
                   description="nbgrader generate_feedback with hidden tests and test tracebacks removed.")
    g = sub.add_parser("grades", parents=[common], help="export grades (grades.csv) and item statistics (item_stats.csv/.png)",
                       description="nbgrader's CSV export of the gradebook, then per-question statistics "
                                   "(difficulty, discrimination, options chosen, flags) of every autograded quiz.")
    g.add_argument("--out", default=None, help="CSV path (default: <root>/grades.csv)")
    g.add_argument("--lms", choices=sorted(LMS_COLUMNS), action="append", default=None,
                   help="also write <root>/grades_<lms>.csv with the totals under the LMS's import column names "
                        "(repeat for both)")
    g.add_argument("--stats", default=None,
                   help="item statistics CSV (default: <root>/item_stats.csv; the plot goes next to it as .png)")
    au = sub.add_parser("audit", parents=[common, any_quiz], help="check option balance, repeats, leaks and answer types",
                        description="Run the quiz checks of courseutils.grading.audit on the instructor notebooks "
                                    "(executed in this process) and print a report; exit 1 if a check fails.")
    au.add_argument("--no-types", action="store_true", help="skip the answer-type check (no torch import, faster)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (1: a key is stale or a submission failed)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CourseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    root = course_root(args.root)
    print(f"course root: {course_root_origin(args.root)}", file=sys.stderr)
    if args.cmd == "keys":
        stale = []
        for q in _select(args.quiz, root):
            if args.check:
                if not key_in_sync(q, root):
                    stale.append(q)
                continue
            t0 = time.perf_counter()
            path = write_key(build_key(q, root)[0])
            print(f"{q}: wrote {path} ({time.perf_counter() - t0:.1f} s)")
        if args.check:
            print("keys out of date: " + ", ".join(stale) + " (run `make quiz-keys`)" if stale else "all keys in sync")
        return 1 if stale else 0
    if args.cmd == "release":
        if args.exam or args.secret_file or args.roster:
            if not (args.exam and args.secret_file):
                raise CourseError("an exam release needs both --exam and --secret-file FILE")
            for q, paths in release_exam(args.secret_file, args.quiz, root, args.roster).items():
                for path in paths:
                    print(f"released {path} (exam variant of {q}; no key, no check cells)")
            if args.roster:
                print(f"wrote {root / 'exam_variants.csv'}")
            return 0
        for path in release(args.quiz, root):
            print(f"released {path}")
        return 0
    if args.cmd == "students":
        for path in student_copies(args.quiz, root):
            print(f"wrote {path}")
        return 0
    if args.cmd == "collect":
        if args.zip is not None:
            if args.student or args.notebook or args.timestamp:
                raise CourseError("--zip collects every student in the zip: give no --student, --timestamp or NOTEBOOK")
            plan = collect_zip(args.quiz, args.zip, root, args.pattern, args.names, args.dry_run, args.tz)
            verb = "would collect" if args.dry_run else "collected"
            for item in plan:
                if item.problem:
                    print(f"NOT COLLECTED  {item.entry}: {item.problem}")
                elif item.note:
                    print(f"skipped        {item.entry} -> {item.student}: {item.note}")
                else:
                    print(f"{verb:<14} {item.entry} -> {item.student} (submitted {timestamp_text(item.time)})")
            if not plan:
                raise CourseError(f"zip={args.zip!r} holds no .ipynb file")
            return 1 if any(item.problem for item in plan) else 0
        if args.dry_run or args.names or args.tz != "UTC" or args.pattern != DEFAULT_PATTERN:
            raise CourseError("--dry-run, --names, --pattern and --tz apply to --zip only")
        if not (args.student and args.notebook):
            raise CourseError("collect needs --student ID and NOTEBOOK (or --zip FILE for a whole LMS download)")
        dest = collect(args.quiz, args.student, args.notebook, root, args.timestamp)
        print(f"collected {dest} (submitted {(dest.parent / 'timestamp.txt').read_text(encoding='utf-8')})")
        return 0
    if args.cmd == "autograde":
        status = 0
        report = autograde(args.quiz, root, student=args.student, force=args.force, timeout=args.timeout,
                           workers=args.workers, sandbox=args.sandbox)
        for q, rep in report.items():
            for s, (score, total) in sorted(rep["graded"].items()):
                note = ""
                if s in rep["skipped"]:
                    note = "  (graded before, unchanged since: not regraded; --force regrades)"
                elif s in rep["manual"]:
                    note = "  (regraded; its manual grades are kept and override the new automatic scores)"
                print(f"{q}  {s:<20} {score:g}/{total:g}{note}")
            for s in rep["failed"]:
                status = 1
                print(f"{q}  {s:<20} FAILED: {rep['reasons'][s]}")
            if rep["log_file"] is not None:
                print(f"{q}: full log in {rep['log_file']}")
        if not any(rep["graded"] or rep["failed"] for rep in report.values()):
            print(f"nothing to grade: no submission matches {root / 'submitted'}/{args.student}/{args.quiz}")
        return status
    if args.cmd == "feedback":
        for path in feedback(args.quiz, root, student=args.student):
            print(f"feedback {path}")
        return 0
    if args.cmd == "grades":
        out = export_grades(args.out, root)
        print(f"wrote {out} and {out.with_name('grades_by_question.csv')}")
        for lms in args.lms or []:
            print(f"wrote {export_lms(lms, root=root)}")
        written = export_item_stats(root, args.stats)
        for path in written:
            print(f"wrote {path}")
        if not written:
            print("no autograded submissions: no item statistics written")
        return 0
    if args.cmd == "audit":
        records = quiz_audit.load_items(root, args.quiz, check_types=not args.no_types)
        text, ok = quiz_audit.audit_report(records, types=not args.no_types)
        print(text)
        return 0 if ok else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
