"""``python -m courseutils.grading``: the instructor's quiz commands (see :mod:`courseutils.grading.instructor`)."""
import sys

from .instructor import main

sys.exit(main())
