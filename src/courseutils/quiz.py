"""Compatibility name for :mod:`courseutils.grading.quiz`, the instant quiz feedback.

Quiz notebooks released before the package was split into layers run
``from courseutils.quiz import check, expect_bool, expect_choice, expect_number``; this
module keeps that line working. It is the very same module object, so ``set_feedback``
and the rest behave identically under both names. New code imports
:mod:`courseutils.grading.quiz`. Like it, this imports neither torch nor nbgrader.
"""
import sys

from .grading import quiz as _quiz

sys.modules[__name__] = _quiz
