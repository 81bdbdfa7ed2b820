"""Layer algorithms: deciding what to quantize and how, from calibration statistics.

- ``sensitivity``: Taylor (gradient, Fisher) sensitivity of layers and groups.
- ``obs``: Optimal Brain Damage / Optimal Brain Surgeon saliencies, updates and pruning.

Next here: RTN, GPTQ, AWQ, mixed-precision bit allocation.

May import: core, numerics, model, ggml, llamacpp, calib.
"""
