"""Layer core: what every other layer may use.

- ``config``: the course's environment variables (default model, device, artifact cache).
- ``errors``: the exceptions raised at public boundaries.
- ``io``: :func:`~courseutils.core.io.atomic_path`, the one way files are written.

May import: nothing (core is the lowest layer).
"""
