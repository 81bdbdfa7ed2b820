# Quantization from First Principles: the two commands are `make lab` and `make test`.
# Each creates .venv when missing and installs the project into it (once: a stamp file
# remembers, so a second run installs and rebuilds nothing).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
QUIZ   ?= all
# Students `make autograde` grades at once, one process each; empty: one per CPU.
WORKERS ?=
# Where student code runs: auto (a bubblewrap sandbox per kernel when bwrap works, else a warning), bwrap,
# docker or podman (a container per kernel), off.
SANDBOX ?= auto
# Exact versions CI tests; `make constraints` rewrites it from .venv.
CONSTRAINTS := constraints.txt
# Which extras to install: the package alone is what Colab needs; lab = JupyterLab,
# instructor = nbgrader, dev = pytest and nbval.
EXTRAS ?= lab,instructor,dev
# PyTorch's wheel index. PyPI's torch for Linux is a CUDA build (several GB), so without an
# NVIDIA GPU we ask PyTorch's CPU index (about 200 MB). Override: make install TORCH_INDEX=URL
# (TORCH_INDEX= for PyPI's default), or NVIDIA_GPU=yes / NVIDIA_GPU= to force the detection.
NVIDIA_GPU  ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_INDEX ?= $(if $(NVIDIA_GPU),,https://download.pytorch.org/whl/cpu)
TORCH_PIP_ARGS = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple,)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export PYTHONUNBUFFERED := 1
# llama.cpp's OpenMP threads spin while idle; on a busy 2-core machine that costs 4-25x.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help install llama-cpp constraints lab system-deps test test-fast test-reference oracles demo model bench html colab-cells release collect autograde feedback grades quiz-keys quiz-audit clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

$(STAMP): pyproject.toml $(CONSTRAINTS) tools/build_llama_cpp.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "torch from $(or $(TORCH_INDEX),PyPI's default index)$(if $(NVIDIA_GPU), (NVIDIA GPU found),)"
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) $(TORCH_PIP_ARGS) torch
	$(PY) tools/build_llama_cpp.py wheel --python $(PY)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# llama-cpp-python is built for this CPU without AMX (tools/build_llama_cpp.py says why) and
# cached under a key of its version and flags; this re-checks the key on every run.
llama-cpp: $(STAMP)
	@$(PY) tools/build_llama_cpp.py wheel --python $(PY)

install: $(STAMP) llama-cpp  ## create .venv and install the course into it

constraints: $(STAMP)  ## rewrite constraints.txt from the versions installed in .venv
	$(PY) tools/freeze_constraints.py

lab: install  ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. lessons/00_setup_and_tour.ipynb

system-deps:  ## install chromium, bubblewrap, podman and runc from apt when missing and possible (tools/system_deps.sh)
	@bash tools/system_deps.sh

test: install system-deps  ## run every check: layout, unit tests, quiz pipeline, the rendered site, lessons under nbval and from an empty cache
	@if [ -x ../shared/tools/course-check ]; then ../shared/tools/course-check; fi
	$(PY) -m pytest tests lessons --nbval-lax -p no:cacheprovider -m "not reference"

test-fast: install  ## the developer loop: unit tests without those marked slow, no notebooks (under a minute)
	$(PY) -m pytest tests -m "not slow and not reference" -p no:cacheprovider -q

# The reference GPTQ (llm-compressor) pins a transformers the course does not use: its own venv.
REF_VENV  := .cache/reference-venv
REF_STAMP := $(REF_VENV)/.installed
LLMCOMPRESSOR_SPEC ?= llmcompressor==0.14.0.1
$(REF_STAMP): $(CONSTRAINTS)
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install --quiet $(TORCH_PIP_ARGS) "$$(grep -E '^torch==' $(CONSTRAINTS))"
	$(REF_VENV)/bin/python -m pip install --quiet "$(LLMCOMPRESSOR_SPEC)"
	@touch $(REF_STAMP)

test-reference: install $(REF_STAMP)  ## our GPTQ against llm-compressor's on tinycode layers (writes benchmarks/gptq_reference.json)
	COURSE_REFERENCE_PYTHON=$(REF_VENV)/bin/python $(PY) -m pytest tests -m reference -p no:cacheprovider

# llama-perplexity from the pinned llama-cpp-python sdist (same sources and CPU flags as the wheel;
# cached: about 5 minutes on 2 cores the first time), then the golden perplexities of tinycode.
oracles: install  ## rebuild the llama.cpp fixtures (llama-perplexity, llama-imatrix, llama-quantize; tools built once, cached)
	$(PY) tools/build_llama_cpp.py tools llama-perplexity llama-imatrix llama-quantize
	$(PY) tests/fixtures/make_oracles.py --bin "$$($(PY) tools/build_llama_cpp.py tools llama-perplexity | tail -n 1)"
	$(PY) tests/fixtures/make_imatrix_fixture.py --bin "$$($(PY) tools/build_llama_cpp.py tools llama-imatrix llama-quantize | tail -n 1)"

demo: install  ## print the quantization scorecard of tinycode
	$(PY) -m courseutils scorecard

model: install  ## retrain tinycode from the standard library (~80 min; one thread, as the shipped model was)
	OMP_NUM_THREADS=1 $(PY) -m courseutils.model.train --threads 1

bench: install  ## write benchmarks/results.md and .json
	$(PY) benchmarks/run.py

html: install  ## execute every lesson and render the course site to build/html (opens offline: build/html/index.html)
	$(PY) tools/build_site.py --out build/html

# Standard library only: it needs no .venv.
colab-cells:  ## write the Open-in-Colab badge and install cell (URL from pyproject.toml) into every lesson and quiz
	$(PYTHON) tools/colab_cells.py

quiz-keys: install  ## regenerate the instant-feedback keys and the student copies from quizzes/source
	$(PY) -m courseutils.grading keys
	$(PY) -m courseutils.grading students

# The grading targets never install: a grading container is often offline, and a pull that
# touches pyproject.toml must not make `make autograde` run pip. They need .venv once
# (`make install`, online); after that only `make install` updates it. ("| $(STAMP)" is an
# order-only prerequisite: built when missing, never rebuilt because it is older.)
STUDENT ?=
release: $(PY)  ## student versions in quizzes/release (EXAM=1 SECRET_FILE=f [ROSTER=f]: exam variants)
ifeq ($(EXAM),1)
	$(PY) -m courseutils.grading release --quiz $(QUIZ) --exam --secret-file $(SECRET_FILE) $(if $(ROSTER),--roster $(ROSTER))
else
	$(PY) -m courseutils.grading release --quiz $(QUIZ)
endif

collect: $(PY)  ## QUIZ=q STUDENT=id NOTEBOOK=f [TIMESTAMP=t], or QUIZ=q ZIP=lms.zip [DRY_RUN=1] [NAMES=csv]: into quizzes/submitted
ifneq ($(ZIP),)
	$(PY) -m courseutils.grading collect --quiz $(QUIZ) --zip "$(ZIP)" $(if $(DRY_RUN),--dry-run) $(if $(NAMES),--names "$(NAMES)")
else
	$(PY) -m courseutils.grading collect --quiz $(QUIZ) --student "$(STUDENT)" $(if $(TIMESTAMP),--timestamp "$(TIMESTAMP)") "$(NOTEBOOK)"
endif

autograde: $(PY)  ## grade quizzes/submitted (QUIZ=q STUDENT=id FORCE=1: regrade; WORKERS=N at once, default one per CPU; SANDBOX=auto|bwrap|docker|podman|off)
	$(PY) -m courseutils.grading autograde --quiz $(QUIZ) --sandbox $(SANDBOX) $(if $(STUDENT),--student "$(STUDENT)") $(if $(FORCE),--force) $(if $(WORKERS),--workers $(WORKERS))

feedback: $(PY)  ## HTML feedback (no hidden tests) in quizzes/feedback (QUIZ=q STUDENT=id for one)
	$(PY) -m courseutils.grading feedback --quiz $(QUIZ) $(if $(STUDENT),--student "$(STUDENT)")

grades: $(PY)  ## quizzes/grades.csv (status, lateness), grades_by_question.csv, grades_canvas/moodle.csv, item_stats
	$(PY) -m courseutils.grading grades --lms canvas --lms moodle

quiz-audit: install  ## check the quizzes: option balance, repeats, leaks, answer types
	$(PY) -m courseutils.grading audit

clean:  ## remove generated files (keeps .venv and submissions)
	rm -rf build .pytest_cache quizzes/release quizzes/autograded quizzes/feedback benchmarks/results.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
