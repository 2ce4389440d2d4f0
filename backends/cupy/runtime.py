"""Loading CuPy-backend modules: as NumPy-backend ones (compiled once per source text, shown in
tracebacks); importing one imports CuPy, and CuPy compiles each CUDA kernel on its first launch
(NVRTC, cached under ~/.cupy/kernel_cache)."""
from __future__ import annotations

import types

from ..numpy import runtime as numpy_runtime


def load(source: str, name: str) -> types.ModuleType:
    """The module for `source` (one per source text and process); ImportError without CuPy."""
    return numpy_runtime.load(source, name)
