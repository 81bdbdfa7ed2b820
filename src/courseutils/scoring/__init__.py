"""Layer scoring: how good is a quantized model, measured end to end.

- ``evaluate``: perplexity and KLD of GGUF files through llama.cpp, against a baseline (one file, or
  many against one base, per token for paired intervals).
- ``torch_eval``: the same per-token scores for a torch model (e.g. fake-quantized by RTN/GPTQ).
- ``tasks``: held-out format-following and cloze tasks on the corpus.
- ``scorecard``: the scorecard of quant types and the smallest variant that passes a rubric.
- ``decision``: scorecard rows with paired intervals for any variant (files and torch models), the
  choice under a rubric (and a budget) and its reasons, computed from the intervals (lesson 10).

May import: core, numerics, model, ggml, llamacpp, calib, algorithms.
"""
