"""courseutils: the helpers behind "Quantization from First Principles".

Modules, one concept each (import them directly, e.g. ``from courseutils.llamacpp import quantize``):

- ``config``, ``errors``: environment (model, device, cache) and the exceptions raised.
- ``corpus``, ``tokenizer``, ``model``, ``train``: tinycode, the embedded model.
- ``gguf_export``, ``llamacpp``, ``imatrix``: GGUF files, llama.cpp quantization and inference.
- ``metrics``, ``evaluate``, ``tasks``, ``scorecard``: measuring quality, choosing a quant.
"""
__version__ = "0.1.0"
