"""Layer llamacpp: the bridge to llama.cpp (through llama-cpp-python).

- ``bridge``: quantize, check and load GGUF files, logits, generation, the GGUF cache.
- ``typemap``: which type each tensor gets in a llama.cpp mix (Q4_K_M ...), from llama.cpp.

The public names of both are re-exported here, so ``from courseutils.llamacpp import
quantize`` works. Importing this package loads the bridge (and sets ``OMP_WAIT_POLICY``);
llama_cpp itself is loaded on first use.

May import: core, numerics, model, ggml.
"""
from . import bridge, typemap
from .bridge import *  # noqa: F401,F403  (the bridge's __all__)
from .typemap import llama_type_map

__all__ = [*bridge.__all__, *typemap.__all__]
