"""Lessons run the way a student runs them: a fresh kernel, an empty COURSE_CACHE, nbconvert.

nbval (``make test``'s second half) runs every lesson too, but with the cache that earlier
tests warmed: a lesson that only works when the GGUF files already exist, or that crashes
llama.cpp while quantizing or loading from scratch, would slip through. A crashed kernel
fails here with the cell that killed it.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Lesson 00 is the first thing every student runs; lesson 03 loads the most llama.cpp types; lesson 08
# makes per-tensor mixes, an importance matrix and the IQ types that need one; lesson 09 quantizes in
# both calibration modes and calibrates GPTQ, AWQ and the importance matrix on two kinds of text;
# lesson 10 (the capstone) runs the whole pipeline: export, calibration, llama.cpp and torch
# quantization, scoring, the choice.
FRESH_LESSONS = ["00_setup_and_tour", "03_measuring_quality", "08_mixed_precision", "09_open_problems", "10_capstone"]


@pytest.mark.slow
@pytest.mark.parametrize("lesson", FRESH_LESSONS)
def test_lesson_runs_from_an_empty_cache(root, tmp_path, lesson):
    cache = tmp_path / "course-cache"
    env = dict(os.environ, COURSE_CACHE=str(cache), HF_HUB_OFFLINE="1")
    notebook = root / "lessons" / f"{lesson}.ipynb"
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--ExecutePreprocessor.timeout=600", "--output-dir", str(tmp_path), str(notebook)],
                          capture_output=True, text=True, env=env, cwd=root / "lessons", timeout=1200)
    assert proc.returncode == 0, f"{lesson} failed from an empty cache:\n{proc.stderr[-5000:]}"
    assert (tmp_path / f"{lesson}.ipynb").is_file()
    assert any(cache.rglob("*.gguf")), "the lesson should have built its GGUF files into the empty cache"
