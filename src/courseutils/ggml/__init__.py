"""Layer ggml: llama.cpp's tensor formats and files, reimplemented and read in Python.

- ``blocks``: the block layout table, the legacy 32-weight formats, ``quantize``/``dequantize``.
- ``kquants``: the 256-weight K-quant super-blocks (Q2_K ... Q6_K).
- ``ggufinfo``: reading GGUF files, bits per weight, size estimates.
- ``gguf_export``: writing a Hugging Face Llama checkpoint as GGUF.

May import: core, numerics, model. Never llama.cpp itself (that is the layer above).
"""
