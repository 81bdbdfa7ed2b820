"""Submissions as an instructor receives them: when, which quiz, and from an LMS download.

- **When.** nbgrader compares ``submitted/<student>/<quiz>/timestamp.txt`` with the quiz's
  due date (``nbgrader db assignment add QUIZ --duedate ...``) to get the seconds late and
  the late penalty. The timestamp written here is the *submission* time: a time the
  instructor gives (``--timestamp``), else the time stored in the LMS download (a zip
  entry's time), else the notebook file's modification time, never the time of collecting.
  :func:`parse_time` reads the instructor's text, :func:`timestamp_text` writes nbgrader's
  format (``%Y-%m-%d %H:%M:%S.%f UTC``, what nbgrader's own exchange writes).
- **Which quiz.** Release writes ``metadata.courseutils.quiz`` into every student notebook
  (:class:`courseutils.grading.nbgrader_plugins.StampQuizId`). :func:`notebook_quiz` reads
  it, or for a notebook released before that, infers the quiz from its
  ``check("NN_slug", ...)`` cells; :func:`check_quiz` refuses a notebook of another quiz.
- **An LMS download.** :func:`plan_zip` maps every notebook in a zip (Canvas's "Download
  Submissions", Moodle's "Download all submissions", or any zip of files named by student,
  as nbgrader's ``zip_collect`` and otter-grader accept) to a student id: a regular
  expression with a group ``student`` finds the name in the entry's path, and an optional
  names file maps LMS names (``Ada Lovelace``) to course ids (``ada``).
"""
from __future__ import annotations

import csv
import datetime as dt
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from ..core.errors import CourseError

__all__ = ["STUDENT_ID", "check_student", "parse_time", "timestamp_text", "file_time", "notebook_quiz",
           "check_quiz", "read_names", "ZipSubmission", "plan_zip", "zip_entry_time", "DEFAULT_PATTERN",
           "TIMESTAMP_FORMAT"]

# Student ids: letters, digits, "_", "-", "." and "@" (e-mail addresses, as many LMSs use).
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
# The student's name is the entry's path (without ".ipynb") up to the first "_" or "/":
# Canvas "lovelaceada_12345_678_00_setup_and_tour.ipynb" -> "lovelaceada",
# Canvas late "lovelaceada_LATE_12345_..." -> "lovelaceada",
# Moodle "Ada Lovelace_1234_assignsubmission_file_/quiz.ipynb" -> "Ada Lovelace" (map it with a names file),
# "ada.ipynb" or "ada/quiz00.ipynb" -> "ada".
DEFAULT_PATTERN = r"^(?P<student>[^_/]+)"
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](?P<quiz>\d\d_\w+)["']""")


def check_student(student: Any) -> str:
    """``student`` if it is a valid id, else :class:`CourseError` saying what is allowed."""
    if not isinstance(student, str) or not STUDENT_ID.fullmatch(student):
        raise CourseError(f"student={student!r}: use letters, digits, '_', '-', '.' or '@' "
                          f"(starting with a letter or digit)")
    return student


# --------------------------------------------------------------------------- times
def parse_time(text: str, param: str = "timestamp") -> dt.datetime:
    """An aware UTC datetime from ``text``: ISO 8601 (``2026-12-01 17:05``, ``2026-12-01T17:05:00+01:00``).

    A time without a zone is taken as UTC.
    """
    try:
        when = dt.datetime.fromisoformat(str(text).strip().replace(" UTC", "+00:00").replace("Z", "+00:00"))
    except ValueError as exc:
        raise CourseError(f"{param}={text!r} is not a time; use ISO 8601, e.g. '2026-12-01 17:05:00' (UTC) "
                          f"or '2026-12-01T17:05:00+01:00'") from exc
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def timestamp_text(when: dt.datetime) -> str:
    """``when`` in nbgrader's ``timestamp.txt`` format, in UTC."""
    return when.astimezone(dt.timezone.utc).strftime(TIMESTAMP_FORMAT)


def file_time(path: str | os.PathLike) -> dt.datetime:
    """A file's modification time (UTC): when it was saved, or when a download tool says it was."""
    return dt.datetime.fromtimestamp(Path(path).stat().st_mtime, dt.timezone.utc)


def zip_entry_time(info: zipfile.ZipInfo, tz: dt.tzinfo = dt.timezone.utc) -> dt.datetime:
    """A zip entry's modification time in UTC.

    The extended-timestamp field (``0x5455``, written by Info-ZIP and most tools) holds a
    UTC Unix time; without it the entry only has a local date and time with no zone, read
    in ``tz``.
    """
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack("<HH", extra[:4])
        body = extra[4:4 + size]
        if tag == 0x5455 and size >= 5 and body[0] & 1:
            return dt.datetime.fromtimestamp(struct.unpack("<I", body[1:5])[0], dt.timezone.utc)
        extra = extra[4 + size:]
    return dt.datetime(*info.date_time, tzinfo=tz).astimezone(dt.timezone.utc)


# --------------------------------------------------------------------------- which quiz
def notebook_quiz(nb) -> str | None:
    """The quiz a notebook belongs to, or ``None`` when nothing in it says.

    ``metadata.courseutils.quiz`` (written at release) first; else the quiz named by its
    ``check("NN_slug", ...)`` cells, when they all name the same one.
    """
    stamped = nb.get("metadata", {}).get("courseutils", {}).get("quiz")
    if stamped:
        return str(stamped)
    named = {m["quiz"] for c in nb.get("cells", []) if c.get("cell_type") == "code"
             for m in CHECK_CALL.finditer(c.get("source", ""))}
    return named.pop() if len(named) == 1 else None


def check_quiz(nb, quiz: str, what: str) -> None:
    """Raise :class:`CourseError` when ``nb`` (described by ``what``) belongs to a quiz other than ``quiz``."""
    found = notebook_quiz(nb)
    if found is not None and found != quiz:
        raise CourseError(f"{what} is quiz {found!r}, not {quiz!r}: refused (a notebook of another quiz "
                          f"would score near 0); collect it under --quiz {found}")


# --------------------------------------------------------------------------- LMS downloads
def read_names(path: str | os.PathLike) -> dict[str, str]:
    """``{LMS name: student id}`` from a CSV with columns ``name`` and ``student``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise CourseError(f"names={str(path)!r} cannot be read ({exc})") from exc
    if not rows or not {"name", "student"} <= set(rows[0]):
        raise CourseError(f"names={str(path)!r}: needs a header line 'name,student' and one row per student")
    names = {}
    for row in rows:
        names[row["name"].strip()] = check_student(row["student"].strip())
    return names


@dataclass
class ZipSubmission:
    """One notebook of an LMS download and what collecting it would do."""
    entry: str                   # path inside the zip
    name: str                    # the name the pattern found ("" if none)
    student: str | None          # course id, None if it could not be mapped
    time: dt.datetime            # the entry's time (UTC)
    problem: str = ""            # why it will not be collected ("" if it will)
    note: str = ""               # e.g. "older file of the same student, skipped"


def plan_zip(zip_path: str | os.PathLike, quiz: str, pattern: str = DEFAULT_PATTERN,
             names: dict[str, str] | None = None, tz: dt.tzinfo = dt.timezone.utc) -> list[ZipSubmission]:
    """Which notebook of the zip goes to which student (nothing is written).

    Every ``.ipynb`` entry (macOS ``__MACOSX`` and checkpoint copies skipped) is matched with
    ``pattern`` (a regular expression with a group ``student``, searched in the entry's path
    without ``.ipynb``); the name found is mapped through ``names`` when given, and must then
    be a valid student id. An entry that is not a readable notebook, or a notebook of another
    quiz (:func:`check_quiz`), gets a ``problem``. When a student has several notebooks (a
    resubmission), the newest is kept and the others get a ``note``.
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise CourseError(f"pattern={pattern!r} is not a regular expression ({exc})") from exc
    if "student" not in regex.groupindex:
        raise CourseError(f"pattern={pattern!r} needs a named group (?P<student>...)")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CourseError(f"zip={str(zip_path)!r} is not a readable zip file ({exc})") from exc
    plan: list[ZipSubmission] = []
    with archive:
        for info in archive.infolist():
            path = info.filename
            if (info.is_dir() or not path.endswith(".ipynb") or "__MACOSX" in path
                    or ".ipynb_checkpoints" in path):
                continue
            match = regex.search(path[:-len(".ipynb")])
            name = match.group("student").strip() if match and match.group("student") else ""
            item = ZipSubmission(path, name, None, zip_entry_time(info, tz))
            student = names.get(name) if names is not None else name
            if not name:
                item.problem = f"pattern {pattern!r} finds no student name in it"
            elif names is not None and student is None:
                item.problem = f"name {name!r} is not in the names file"
            elif not STUDENT_ID.fullmatch(student):
                item.problem = f"{student!r} is not a valid student id (give a names file mapping it)"
            else:
                item.student = student
                try:
                    nb = nbformat.reads(archive.read(info).decode("utf-8"), as_version=4)
                    check_quiz(nb, quiz, "it")
                except CourseError as exc:
                    item.problem = str(exc).split(":")[0] + ": refused"
                except Exception as exc:  # nbformat raises several kinds for a file that is not a notebook
                    item.problem = f"not a readable notebook ({type(exc).__name__})"
            plan.append(item)
    by_student: dict[str, list[ZipSubmission]] = {}
    for item in plan:
        if item.student and not item.problem:
            by_student.setdefault(item.student, []).append(item)
    for items in by_student.values():
        items.sort(key=lambda i: i.time, reverse=True)
        for older in items[1:]:
            older.note = f"older than {items[0].entry}: skipped"
    return plan
