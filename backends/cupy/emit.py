"""Program -> the source of a CuPy module, and its CUDA kernels as files.

The module is the NumPy backend's (backends/numpy/emit.py): the same passes over `xp = cupy`,
with the kernels and helpers it calls copied in, device.py's versions replacing the host-only
ones, and each Kernel item a CUDA source (kept as a raw string) with a RawKernel per precision.
It needs only NumPy and CuPy, and importing it compiles nothing: CuPy compiles a kernel (NVRTC,
cached on disk) the first time it runs.
"""
from __future__ import annotations

from ...core import kernels
from ...compiler.program import Program
from ..numpy import emit as numpy_emit
from ..numpy import helpers
from . import cuda, device
from .passes import CudaPasses

MODULES = (kernels, helpers, device)        # later ones replace earlier functions of the same name

_DOC = '''"""A recurrent model compiled by rnndsl for a CUDA GPU through CuPy: forward(), backward() and
loss_and_grad(); do not edit.

Arrays live on the device (cupy); parameters and inputs may be given as NumPy arrays, which are
copied over once. Every fused elementwise kernel is CUDA C below (the spec lines it comes from as
comments), float32 and float64; products are cuBLAS GEMMs through cupy.matmul.
In forward() and backward() the spec's own names are used as written and the adjoint of v is
d_v; every other name there begins with _ (the checker refuses spec names that begin with _ or
d_), so no spec name can shadow the code's. Comments quote the spec through repr."""'''


def emit(prog: Program, spec_name: str, spec_file: str, dtype: str = "float64") -> tuple:
    """(the module's source, {file name: CUDA source} of every kernel it launches)."""
    e = CudaPasses(prog, dtype)
    passes = [e.forward(), e.backward()]
    used = {n[1:] for n in numpy_emit._names("\n\n".join(passes)) if n.startswith("_")}
    closure = numpy_emit._closure(used, MODULES)
    parts = [_DOC, "\n".join(["import numpy as np", *e.imports]) + "\n\nxp = cupy",
             f"SPEC_NAME = {str(spec_name)!r}\nSPEC_FILE = {str(spec_file)!r}",
             _sources(closure), numpy_emit._aliases(closure, used), *e.definitions(), *passes, numpy_emit._DRIVER]
    files = {f"{name}.cu": text for name, text in e.cuda.items()}
    if any(n == "_CTC_CU" for n, _ in closure):
        files["_ctc.cu"] = device._CTC_CU
    return "\n\n".join(p.rstrip() for p in parts) + "\n", files


def _sources(closure: list) -> str:
    """The kernels and helpers the passes call; CUDA text as raw strings, readable as written."""
    out = ["# ---- kernels (rnndsl/core/kernels.py), helpers (backends/numpy/helpers.py) and their "
           "device versions (backends/cupy/device.py) ----"]
    for name, obj in closure:
        if isinstance(obj, str) and "\n" in obj:
            out.append(cuda.raw_string(name, obj) + "\n")
        else:
            out.append(numpy_emit._source(obj, name))
    return "\n\n".join(s.rstrip() for s in out)
