"""Layer ggml: llama.cpp's tensor formats and files, reimplemented and read in Python.

- ``blocks``: the block layout table, the legacy 32-weight formats, ``quantize``/``dequantize``.
- ``kquants``: the 256-weight K-quant super-blocks (Q2_K ... Q6_K).
- ``fp16``: the fp16 scale fields every block format stores (used by both of the above).
- ``ggufinfo``: reading GGUF files, bits per weight, size estimates.
- ``gguf_export``: writing a Hugging Face Llama checkpoint as GGUF.
- ``pretokenizer``: which llama.cpp pre-tokenizer a HF tokenizer needs (llama.cpp's probe hash).

May import: core, numerics, model. Never the llama.cpp bridge, the layer above.
"""
