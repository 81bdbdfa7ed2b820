"""Layer llamacpp: the bridge to llama.cpp (through llama-cpp-python).

- ``bridge``: quantize, check and load GGUF files, logits, generation, the GGUF cache.
- ``typemap``: which type each tensor gets in a llama.cpp mix (Q4_K_M ...), from llama.cpp.
- ``loading``: how a model loads on this CPU (llama.cpp's extra buffer types on or off: AMX-safe).
- ``libggml``: llama.cpp's own block quantizer and ``dequantize_row_*`` through ctypes (an oracle).

The public names of the first three are re-exported here, so ``from courseutils.llamacpp import
quantize`` works. Importing this package loads the bridge (and sets ``OMP_WAIT_POLICY``);
llama_cpp itself is loaded on first use.

May import: core, numerics, model, ggml.
"""
from . import bridge, libggml, loading, typemap
from .bridge import *  # noqa: F401,F403  (the bridge's __all__)
from .loading import *  # noqa: F401,F403
from .libggml import ggml_dequantize, ggml_quantize
from .typemap import llama_type_map

__all__ = [*bridge.__all__, *loading.__all__, *typemap.__all__]
