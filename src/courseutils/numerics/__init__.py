"""Layer numerics: numbers and the error of representing them, on plain arrays.

- ``formats``: FP32/FP16/BF16/FP8/NF4 bit layouts and rounding.
- ``linear``: linear (absmax, zero-point) quantizers per tensor, channel or group; clipping search.
- ``codebooks``: Lloyd–Max (1-D k-means) code books fitted to data, beside NF4.
- ``metrics``: token NLL, perplexity, KL divergence, top-1 agreement, chunking.
- ``bootstrap``: paired bootstrap confidence intervals of a perplexity change, a mean (KLD), a rank correlation.

May import: core.
"""
