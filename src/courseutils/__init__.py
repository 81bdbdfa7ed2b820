"""courseutils: the helpers behind "Quantization from First Principles".

One subpackage per layer of the course's machinery, listed low to high in :data:`LAYERS`.
A module imports from its own layer and the layers below it, never from one above, and
no two modules import each other, not even lazily inside a function
(``tests/test_layers.py`` reads every import statement and checks both):

- ``core``: the environment (model, device, cache), the exceptions, atomic file writes.
- ``numerics``: number formats, linear quantizers, quality metrics (NLL, perplexity, KLD).
- ``model``: tinycode and other Llama models: loading, tokenizer, corpus, training.
- ``ggml``: llama.cpp's block formats and K-quants in numpy, reading and writing GGUF.
- ``llamacpp``: the bridge to llama.cpp: quantize, load, logits, generation, type maps.
- ``calib``: activation hooks, the importance matrix, Hessian capture.
- ``algorithms``: sensitivity, OBD/OBS (and next RTN, GPTQ, AWQ, bit allocation).
- ``scoring``: evaluation through llama.cpp, held-out tasks, the scorecard.
- ``viz``: plots and widgets; they draw what lower layers computed.
- ``grading``: instant quiz feedback, quiz keys, nbgrader plugins, the instructor CLI.
- ``top``: ``cli.py`` and ``__main__.py``, the ``courseutils`` command.

Import the modules themselves, e.g. ``from courseutils.numerics.linear import fake_quantize``
(``courseutils.llamacpp`` also re-exports the bridge's names). This file imports nothing,
so ``courseutils.quiz``, the checker released quiz notebooks import (a shim for
:mod:`courseutils.grading.quiz`), stays free of torch.
"""
__version__ = "0.1.0"

#: The layers, low to high. Each is the subpackage of that name, except ``top``.
LAYERS = ("core", "numerics", "model", "ggml", "llamacpp", "calib", "algorithms", "scoring", "viz", "grading", "top")

#: The modules directly in ``courseutils/`` and their layers.
TOP_LEVEL = {"__init__": "core", "quiz": "grading", "cli": "top", "__main__": "top"}
