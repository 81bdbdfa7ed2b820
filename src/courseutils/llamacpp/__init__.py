"""Layer llamacpp: the bridge to llama.cpp (through llama-cpp-python).

- ``bridge``: quantize, check and load GGUF files, logits, generation, the GGUF cache.

The bridge's public names are re-exported here, so ``from courseutils.llamacpp import
quantize`` works. Importing this package loads the bridge (and sets ``OMP_WAIT_POLICY``);
llama_cpp itself is loaded on first use.

May import: core, numerics, model, ggml.
"""
from .bridge import *  # noqa: F401,F403  (the bridge's __all__)
from .bridge import __all__  # noqa: F401
