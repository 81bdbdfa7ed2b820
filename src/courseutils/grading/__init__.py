"""Layer grading: quizzes, their instant-feedback keys and nbgrader.

- ``quiz``: ``check`` and friends, the instant feedback students see (no torch, no nbgrader;
  also importable as ``courseutils.quiz``).
- ``quiz_keys``: parsing quiz notebooks and writing their hashed keys.
- ``nbgrader_plugins``: the preprocessors ``quizzes/nbgrader_config.py`` names.
- ``givens``: exam-mode givens: the locked givens cell, its copy in the hidden tests, draws from a secret.
- ``exam``: exam variants: givens drawn from a secret, options shuffled, no check cells, no key.
- ``audit``: the checks that keep quizzes honest (option balance, repeats, leaks, answer types).
- ``item_stats``: per-question statistics of a class's autograded submissions.
- ``sandbox``: autograde's kernel in a bubblewrap sandbox (kernelspec launcher, rlimits, no network).
- ``sandbox_container``: the same kernel in a Docker or Podman container (``--sandbox docker|podman``).
- ``sandbox_choice``: which sandbox autograde uses (``auto``, ``off``, ``bwrap``, ``docker``, ``podman``).
- ``submissions``: submission times, the quiz a notebook belongs to, mapping an LMS zip to students.
- ``instructor``: release, collect, autograde, feedback, grades and LMS exports; ``python -m courseutils.grading``.

May import: core, numerics, model, ggml, llamacpp, calib, algorithms, scoring, viz.
This file imports nothing, so ``import courseutils.grading.quiz`` stays light.
"""
