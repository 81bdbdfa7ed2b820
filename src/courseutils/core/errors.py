"""Exceptions raised at the public boundary of ``courseutils``.

Every message names the parameter, the value it got and what is allowed, so a
student who passes the wrong thing learns what to pass instead.
"""
from __future__ import annotations

__all__ = ["CourseError", "ModelError", "GGUFError", "QuantTypeError", "EvalTextError", "LlamaCppError",
           "UnknownPreTokenizerError", "TokenizerMismatchError"]


class CourseError(ValueError):
    """Base class: a bad argument or a bad file given to a courseutils function."""


class ModelError(CourseError):
    """A model name or path that cannot be loaded as a Llama-architecture model."""


class GGUFError(CourseError):
    """A GGUF file that is missing, empty, truncated or otherwise unreadable."""


class QuantTypeError(CourseError):
    """An unknown llama.cpp quantization type, or one that needs an importance matrix."""


class EvalTextError(CourseError):
    """Evaluation text that is empty or too short for the requested context."""


class LlamaCppError(CourseError):
    """llama.cpp refused to load a file or failed a call; the message ends with llama.cpp's
    own last log lines (see :mod:`courseutils.llamacpp.log`)."""


class UnknownPreTokenizerError(ModelError):
    """A tokenizer whose probe hash names no llama.cpp pre-tokenizer the exporter knows;
    pass ``pre_tokenizer=`` explicitly (see :mod:`courseutils.ggml.pretokenizer`)."""


class TokenizerMismatchError(ModelError):
    """llama.cpp tokenizes an exported GGUF differently from the model's Hugging Face
    tokenizer (see :mod:`courseutils.llamacpp.parity`)."""
