"""Layer llamacpp: the bridge to llama.cpp (through llama-cpp-python).

- ``bridge``: quantize, check and load GGUF files, logits, generation, the GGUF cache.
- ``typemap``: which type each tensor gets in a llama.cpp mix (Q4_K_M ...), from llama.cpp.
- ``loading``: how a model loads on this CPU (llama.cpp's extra buffer types on or off: AMX-safe).
- ``log``: a tap on llama.cpp's log callback, so errors quote llama.cpp's last log lines
  and loads keep their log (``captured_log``, ``recent_log``).
- ``parity``: comparing llama.cpp's tokenization of an export with the HF tokenizer's, and
  explaining the first difference (the bridge's ``check_tokenizer_parity`` runs it).
- ``libggml``: llama.cpp's own block quantizer and ``dequantize_row_*`` through ctypes (an oracle).

The public names of the first five are re-exported here, so ``from courseutils.llamacpp import
quantize`` works. Importing this package loads the bridge (and sets ``OMP_WAIT_POLICY``);
llama_cpp itself is loaded on first use.

May import: core, numerics, model, ggml.
"""
from . import bridge, libggml, loading, log, parity, typemap
from .bridge import *  # noqa: F401,F403  (the bridge's __all__)
from .loading import *  # noqa: F401,F403
from .log import *  # noqa: F401,F403
from .parity import *  # noqa: F401,F403
from .libggml import ggml_dequantize, ggml_quantize
from .typemap import llama_type_map

__all__ = [*bridge.__all__, *loading.__all__, *log.__all__, *parity.__all__, *typemap.__all__]
