"""Layer calib: what a model does on calibration text, captured for the algorithms.

- ``hooks``: forward/backward hooks on linear layers, calibration batches, weight swaps.
- ``imatrix``: llama.cpp's importance matrix (mean squared activation per input column), and its GGUF file.
- ``hessian``: Hessian and Fisher capture per linear layer, damping and inversion.
- ``capture``: each decoder block's inputs, sequential (after earlier blocks are quantized) or independent.

May import: core, numerics, model, ggml, llamacpp.
"""
