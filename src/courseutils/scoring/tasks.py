"""Task-level checks for a code model: format following and a cloze "task accuracy".

tinycode writes Python, so both can be checked honestly:

- **Format following**: complete a function header taken from held-out code and ask
  whether the result is still valid Python. A completion cut off after ``max_tokens`` may
  be unfinished, so "valid" means *no error that more text could fix*: ``codeop`` (the
  module behind the interactive prompt) accepts complete code and reports unfinished code
  as incomplete, but raises ``SyntaxError`` on real mistakes. Indentation must use spaces
  in multiples of four, as every file in the training corpus does.
- **Task accuracy**: a held-out cloze test. At positions of the validation text where the
  next token is a Python keyword, a closing bracket, or an identifier already seen in the
  context, does the model rank the right token first?
"""
from __future__ import annotations

import ast
import codeop
import keyword
import textwrap
import warnings
from collections.abc import Callable

import numpy as np

from ..core.errors import CourseError
from ..model.corpus import SPLITS, split_of, stdlib_files

__all__ = ["function_prompts", "is_valid_prefix", "indentation_ok", "follows_format", "format_following",
           "cloze_category", "cloze_accuracy"]

CLOSERS = {")", "]", "}"}


def _ignore_source_warnings() -> None:
    """Inside ``catch_warnings``: silence what the compiler says about the text it parses.

    The standard library's files and the model's completions are data here, not our code:
    compiling them reports their invalid escape sequences (``"\\d"``; DeprecationWarning up to
    Python 3.11, SyntaxWarning from 3.12) and ``is`` with a literal (SyntaxWarning). Only those
    two categories are silenced, only while parsing.
    """
    warnings.filterwarnings("ignore", category=SyntaxWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def function_prompts(n: int = 16, split: str = "validation", seed: int = 0, root=None) -> list[str]:
    """``n`` prompts: a function's ``def`` line and first body line, dedented, from ``split`` files."""
    if split not in SPLITS:
        raise CourseError(f"split={split!r} is not one of {SPLITS}")
    candidates = []
    for f in stdlib_files(root):
        if split_of(f.relpath) != split:
            continue
        source = f.path.read_text(encoding="utf-8", errors="replace")
        try:
            with warnings.catch_warnings():
                _ignore_source_warnings()
                tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.body and node.body[0].lineno > node.lineno:
                first_body = node.body[0].lineno
                if first_body - node.lineno > 3 or "\t" in lines[node.lineno - 1]:
                    continue
                snippet = "\n".join(lines[node.lineno - 1: first_body]) + "\n"
                candidates.append(textwrap.dedent(snippet))
    if not candidates:
        raise CourseError(f"no function definitions found in the {split!r} split")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(idx)]


def is_valid_prefix(code: str) -> bool:
    """True if ``code`` is complete Python or an unfinished prefix of valid Python."""
    with warnings.catch_warnings():
        _ignore_source_warnings()
        try:
            codeop.compile_command(code, "<completion>", "exec")
            return True
        except (SyntaxError, ValueError, OverflowError):
            return False


def indentation_ok(code: str) -> bool:
    """Spaces only, and every indentation a multiple of four."""
    for line in code.splitlines():
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        if stripped.startswith("\t") or (len(line) - len(stripped)) % 4:
            return False
    return True


def follows_format(prompt: str, completion: str) -> bool:
    """Format check of one completion: only whole lines count (the last, cut-off line is dropped)."""
    text = prompt + completion
    if "\n" in completion and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    elif "\n" not in completion:
        text = prompt + completion  # a single partial line: judge it as it is
    return indentation_ok(text) and is_valid_prefix(text)


def format_following(generate: Callable[[str], str], prompts: list[str]) -> float:
    """Fraction of ``prompts`` whose completion by ``generate(prompt) -> str`` follows the format."""
    if not prompts:
        raise CourseError("prompts is empty; give at least one prompt")
    return float(np.mean([follows_format(p, generate(p)) for p in prompts]))


def cloze_category(token_text: str, context_text: str) -> str | None:
    """``"keyword"``, ``"bracket"``, ``"identifier"`` (seen before in the context) or None."""
    word = token_text.strip()
    if not word:
        return None
    if keyword.iskeyword(word) or word in {"self", "None", "True", "False"}:
        return "keyword"
    if word in CLOSERS:
        return "bracket"
    if word.isidentifier() and len(word) > 2 and word in context_text:
        return "identifier"
    return None


def cloze_accuracy(logits_and_targets, detokenize: Callable[[list[int]], str], contexts,
                   keep_hits: bool = False) -> dict:
    """Top-1 accuracy at cloze positions.

    Args:
        logits_and_targets: iterable of ``(logits (T, V), targets (T,))`` per chunk.
        detokenize: token ids -> text.
        contexts: per chunk, the text before the scored positions (for the identifier rule).
        keep_hits: also return ``"hits"``, one bool per cloze position in text order (for
            a bootstrap interval of the accuracy).
    Returns:
        ``{"accuracy": float, "n": int, "by_category": {category: accuracy}}`` (and ``"hits"``).
    """
    hits: dict[str, list[bool]] = {"keyword": [], "bracket": [], "identifier": []}
    in_order: list[bool] = []
    for (logits, targets), context in zip(logits_and_targets, contexts):
        pred = logits.argmax(-1)
        for t, target in enumerate(targets):
            cat = cloze_category(detokenize([int(target)]), context + detokenize([int(x) for x in targets[:t]]))
            if cat:
                hits[cat].append(bool(pred[t] == target))
                in_order.append(bool(pred[t] == target))
    every = in_order
    if not every:
        raise CourseError("the text has no cloze positions (keywords, brackets, repeated identifiers)")
    out = {"accuracy": float(np.mean(every)), "n": len(every),
           "by_category": {k: float(np.mean(v)) if v else None for k, v in hits.items()}}
    if keep_hits:
        out["hits"] = in_order
    return out
