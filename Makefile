# Quantization from First Principles: the two commands are `make lab` and `make test`.
# Each creates .venv when missing and installs the project into it (once: a stamp file
# remembers, so a second run installs and rebuilds nothing).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch first, pinned, so pip does not pull several GB of CUDA packages on a CPU machine.
# Override for other machines, e.g. TORCH_SPEC="torch" on a CUDA box.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
QUIZ   ?= all
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export PYTHONUNBUFFERED := 1
# llama.cpp's OpenMP threads spin while idle; on a busy 2-core machine that costs 4-25x.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help install lab test demo model bench html release autograde feedback grades quiz-keys clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	@echo "installing the course (the first time builds llama-cpp-python: about 5 minutes on 2 cores)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the course into it

lab: $(STAMP)  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. lessons/00_setup_and_tour.ipynb

test: $(STAMP)  ## run every check: layout, unit tests, quiz pipeline, lessons under nbval
	@if [ -x ../shared/tools/course-check ]; then ../shared/tools/course-check; fi
	$(PY) -m pytest tests lessons --nbval-lax -p no:cacheprovider

demo: $(STAMP)  ## print the quantization scorecard of tinycode
	$(PY) -m courseutils scorecard

model: $(STAMP)  ## retrain tinycode from the standard library (~80 min; one thread, as the shipped model was)
	OMP_NUM_THREADS=1 $(PY) -m courseutils.model.train --threads 1

bench: $(STAMP)  ## write benchmarks/results.md and .json
	$(PY) benchmarks/run.py

html: $(STAMP)  ## execute every lesson and render it to build/html
	$(VENV)/bin/jupyter nbconvert --to html --execute lessons/*.ipynb --output-dir build/html

quiz-keys: $(STAMP)  ## regenerate the instant-feedback keys and the student copies from quizzes/source
	$(PY) -m courseutils.grading keys
	$(PY) -m courseutils.grading students

release: $(STAMP)  ## generate student versions of the quizzes in quizzes/release
	$(PY) -m courseutils.grading release --quiz $(QUIZ)

autograde: $(STAMP)  ## grade everything in quizzes/submitted
	$(PY) -m courseutils.grading autograde --quiz $(QUIZ)

feedback: $(STAMP)  ## HTML feedback (no hidden tests) in quizzes/feedback
	$(PY) -m courseutils.grading feedback --quiz $(QUIZ)

grades: $(STAMP)  ## export grades to quizzes/grades.csv
	$(PY) -m courseutils.grading grades

clean:  ## remove generated files (keeps .venv and submissions)
	rm -rf build .pytest_cache quizzes/release quizzes/autograded quizzes/feedback benchmarks/results.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
