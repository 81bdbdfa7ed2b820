"""Layer core: what every other layer may use.

- ``config``: the course's environment variables (default model, device, artifact cache).
- ``errors``: the exceptions raised at public boundaries.

Imports no other courseutils layer (the lowest layer).
"""
