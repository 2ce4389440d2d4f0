"""The numba backend: the NumPy backend's module with every kernel of a loop one function
compiled by numba (passes.py); loaded from a file so numba caches the compiled kernels on disk
(runtime.py)."""
from ...compiler.program import Program
from ..numpy.emit import module_source
from .passes import KernelPasses
from .runtime import load  # noqa: F401


def emit_module(prog: Program, spec_name: str, spec_file: str, dtype: str = "float64") -> str:
    """The module's source: standalone, it needs NumPy and numba."""
    return module_source(KernelPasses(prog, dtype), spec_name, spec_file)
