"""Layer algorithms: deciding what to quantize and how, from calibration statistics.

- ``sensitivity``: Taylor (gradient, Fisher) sensitivity of layers and groups.
- ``obs``: Optimal Brain Damage / Optimal Brain Surgeon saliencies, updates and pruning.
- ``quantizer``: the one weight quantizer (scale/zero per channel or group, clipping search)
  and round-to-nearest (RTN), shared by RTN, GPTQ and AWQ.
- ``gptq``: GPTQ on a layer's weights and Hessian (lesson 06).
- ``awq``: AWQ's activation-aware scales (grid search of alpha, folding) and clipping search (lesson 07).
- ``apply``: quantize every linear layer of a model with RTN, GPTQ or AWQ, block by block.
- ``allocation``: mixed precision, a type per tensor under a size budget (greedy and exact; lesson 08).

May import: core, numerics, model, ggml, llamacpp, calib.
"""
