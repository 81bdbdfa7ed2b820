"""Layer model: the models the course quantizes, and tinycode's training.

- ``loader``: load tinycode, a local Hugging Face directory or a hub id (one code path).
- ``tokenizer``: tinycode's byte-level BPE tokenizer.
- ``corpus``: the standard-library corpus and its deterministic train/validation/calibration split.
- ``train``: retrain tinycode reproducibly (``python -m courseutils.model.train``).

May import: core, numerics.
"""
