"""nbgrader configuration of the course's quizzes; this folder (quizzes/) is the course root.

`python -m courseutils.grading ...` (the Makefile's release/collect/autograde/feedback/grades
targets) loads this file with the root set to this folder (the one in the current directory,
or --root; each command prints which). Running the
`nbgrader` command line or the formgrader from inside quizzes/ reads the same file.

Layout (all but source/ are generated and git-ignored):
    source/NN_slug/NN_slug.ipynb      instructor version: solutions and hidden tests
    release/NN_slug/NN_slug.ipynb     student version (`make release`)
    submitted/<student>/NN_slug/      what students handed in (never modified by grading)
    autograded/<student>/NN_slug/     executed and scored copies
    feedback/<student>/NN_slug/       HTML feedback, hidden tests removed
    gradebook.db                      nbgrader's SQLite gradebook
    logs/                             full autograde logs, failures.json (the last failures)
    grades*.csv                       `make grades`: grades, per question, Canvas/Moodle imports
"""

c = get_config()  # noqa: F821 -- traitlets provides get_config() when it loads this file

c.CourseDirectory.course_id = "quant-course"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# --- student code: autograding executes it, with limits ----------------------------------
# QuizExecute is nbgrader's Execute plus a total budget per notebook: each cell may run
# `timeout` seconds, the whole notebook `total_timeout`; cells left when the budget is
# spent are not run and score 0. An endless loop is interrupted, its cell scores 0 and
# the batch goes on with the next cell and the next student.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.QuizExecute.total_timeout = 300
# Once the last cell has run, the kernel is stopped at once instead of being asked to exit
# (nbclient's "graceful" default waits for it, about 0.5 s per student); every output has
# arrived by then, so the grades are the same.
c.Execute.shutdown_kernel = "immediate"
# Each student's kernel runs in a bubblewrap sandbox (`make autograde SANDBOX=auto|bwrap|off`,
# docs/INSTRUCTORS.md): no course files, no network, and these limits; the defaults are
# courseutils.grading.sandbox.Limits (uncomment to change one).
# c.SandboxLimits.memory_bytes = 2 * 2**30  # address space per process (RLIMIT_AS)
# c.SandboxLimits.cpu_seconds = 600         # CPU seconds per process (RLIMIT_CPU)
# c.SandboxLimits.processes = 64            # processes and threads of one sandbox (RLIMIT_NPROC)
# c.SandboxLimits.file_bytes = 64 * 2**20   # largest file it may write (RLIMIT_FSIZE)
# c.SandboxLimits.tmpfs_bytes = 64 * 2**20  # size of its home folder and of /tmp
# The kernel logs only errors: its "Kernel is running over TCP without encryption" warning
# (the kernel and nbgrader talk over localhost) would otherwise print once per submission.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
c.Autograde.autograde_preprocessors = [
    "courseutils.grading.nbgrader_plugins.QuizExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# A student who deleted a test cell gets it back (from the gradebook) instead of a
# silently missing grade.
c.OverwriteCells.add_missing_cells = True

# --- release: nbgrader's own steps, then drop the authoring metadata ----------------------
# InstantiateGivens runs first (before SaveCells stores the cells in the gradebook): in a
# quiz with a locked "givens" cell, each hidden test marked `# @givens` gets its own copy of
# the givens (drawn from c.InstantiateGivens.secret_file for an exam); quizzes without a
# givens cell are released unchanged. See courseutils/grading/givens.py.
# StampQuizId writes the quiz id into the notebook's metadata (courseutils.quiz), so a notebook
# collected under the wrong quiz is refused.
# (the "quiz" cell metadata holds tolerances and deliberately wrong implementations used by
# the pipeline tests; students do not need it).
c.GenerateAssignment.preprocessors = [
    "courseutils.grading.nbgrader_plugins.InstantiateGivens",
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "nbgrader.preprocessors.ClearSolutions",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
    "courseutils.grading.nbgrader_plugins.StripQuizMetadata",
    "courseutils.grading.nbgrader_plugins.StampQuizId",
]

# --- feedback: never show hidden tests ----------------------------------------------------
# nbgrader's default feedback keeps the hidden tests (and their tracebacks, which quote the
# failing line). ClearHiddenTests removes the hidden regions from the test cells' source;
# HideTestOutputs replaces a test cell's outputs by one line naming the error, so neither
# a traceback nor anything a student's function printed while the hidden tests ran leaks;
# the line names the question, its title and its hint. RenderMath typesets the markdown's
# LaTeX as inline SVG, and `python -m courseutils.grading feedback` removes the MathJax CDN
# script, so the HTML shows its math offline.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "courseutils.grading.nbgrader_plugins.HideTestOutputs",
    "courseutils.grading.nbgrader_plugins.RenderMath",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
