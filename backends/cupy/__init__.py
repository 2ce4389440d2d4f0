"""The CuPy backend: the NumPy backend's module over CuPy arrays, every fused elementwise kernel
CUDA C rendered from the op table's scalar templates (cuda.py, passes.py), the host-only helpers
replaced by device ones (device.py), GEMMs on cuBLAS. Emitting needs neither CuPy nor a GPU;
loading (runtime.py) needs CuPy, running a GPU."""
from ...compiler.program import Program
from .emit import emit
from .runtime import load  # noqa: F401


def emit_module(prog: Program, spec_name: str, spec_file: str, dtype: str = "float64") -> str:
    """The module's source: standalone, it needs NumPy and CuPy."""
    return emit(prog, spec_name, spec_file, dtype)[0]


def cuda_files(prog: Program, dtype: str = "float64") -> dict:
    """{`<kernel>.cu`: source} for every CUDA kernel the module launches: what CuPy compiles."""
    return emit(prog, "", "", dtype)[1]
