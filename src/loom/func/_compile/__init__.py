"""``loom.func.compile``: trace transformed functions into flat graphs of aten ops, cache and replay them.

Modules: ``_signature`` (cache keys), ``_trace`` (``make_fx`` tracing), ``_codegen`` (the replay code),
``_backends`` (replay, cuda_graph, inductor), ``_api`` (the public ``compile`` and the compiled function).
"""

from __future__ import annotations

from ._api import CacheInfo, CompiledFunction, compile

__all__ = ["CacheInfo", "CompiledFunction", "compile"]
