"""The CuPy backend's passes: the NumPy backend's forward() and backward() over `xp = cupy`, with
each kernel one CUDA launch.

The operands of a kernel are the numba backend's (backends/numba/passes.py): a view is passed as
its base with a column offset, an adjoint at another step as that step's row, a guard for the BPTT
window as a flag. A CUDA kernel reads raw pointers, so each array it gets must be C-contiguous
with a row length known here: the step buffers and adjoints this module allocates are; anything
else a kernel only reads (parameters, a carried state, a value a CuPy call made) goes through
_xp.ascontiguousarray, which returns a contiguous array as it is.
Every kernel is written for float32 and float64 (cuda.py); forward() and backward() pick one by
_dtype. Everything outside kernels is a CuPy call, the products cuBLAS GEMMs through _xp.matmul.
"""
from __future__ import annotations

import re

import numpy as np

from ...compiler.program import Kernel, Loop, Mode, Ref, instructions
from ..numba import tiles
from ..numba.passes import KernelPasses
from ..numba.tiles import key as _key
from ..numpy.passes import INDENT, _comments
from . import cuda

_PLAIN = re.compile(r"(\w+)(\[[^\[\]]*\])?")      # a name, or one row of it: name[...]
_RESHAPE = re.compile(r"_xp\.reshape\(([^,]+), ")


class CudaPasses(KernelPasses):
    imports = ("import cupy",)
    compiles_loops = False         # a loop's steps are launches: there is no host loop to compile

    def __init__(self, prog, dtype: str = "float64"):
        super().__init__(prog, dtype)
        self.cuda: dict = {}               # kernel name -> its CUDA source (both precisions)
        self.widths: dict = {}             # operand code -> the row length of the array passed
        self.owned = _owned(prog)

    def definitions(self) -> list:
        """The CUDA sources, each as a raw string, and a RawKernel per function in them."""
        if not self.cuda:
            return []
        out = ["# ---- CUDA kernels (compiled by CuPy on first use): one block of threads per row ----"]
        for name, source in self.cuda.items():
            out.append(f"{cuda.raw_string(name + '_cu', source)}\n"
                       f"{name}_f32 = cupy.RawKernel({name}_cu, {name + '_f32'!r})\n"
                       f"{name}_f64 = cupy.RawKernel({name}_cu, {name + '_f64'!r})")
        return out

    def _kernel(self, kernel: Kernel, loop: Loop | None, backward: bool) -> None:
        self.widths = {}
        operands = self._operands(kernel, loop)
        if operands is None:                  # not one loop over rows: its CuPy calls
            super(KernelPasses, self)._kernel(kernel, loop, backward)
            return
        self.put(_comments(kernel.line))
        self.last_line = None
        if kernel.mode is not Mode.STEP:
            self._allocate(kernel)
        live = tiles.in_memory(kernel, operands)           # a value kept in a register is not passed
        written = _written(kernel, live)
        self.cuda[kernel.name] = "\n\n".join([cuda.PREAMBLE] + [cuda.render(kernel, operands, self.widths, written, dt)
                                                               for dt in (np.float32, np.float64)])
        axis = kernel.body[0].out.axis
        rows = f"_T_{axis} * _B" if kernel.mode is Mode.SEQ else "_B"
        passed = {o.code: o for o in live.values()}
        args = [rows] + [self._guarded(o, code in written) for code, o in passed.items()]
        self.put(_launch(f"({kernel.name}_f32 if _single else {kernel.name}_f64)(_grid({rows}), "
                         f"({cuda.threads(kernel)},), (", args))
        if not backward and loop is None:
            for instr in kernel.body:
                self._views_of(instr.out.name)

    def _guarded(self, o, writes: bool) -> str:
        """What the caller passes for an operand: an array the kernel only reads through
        _xp.ascontiguousarray, unless this module allocated it (contiguous rows already)."""
        if writes or o.kind == "flag":
            return o.code
        reshaped = _RESHAPE.match(o.code)
        plain = _PLAIN.fullmatch(reshaped.group(1) if reshaped else o.code)
        return o.code if plain and plain.group(1) in self.owned else f"_xp.ascontiguousarray({o.code})"

    def _operand(self, ref: Ref, mode: Mode):
        """The numba backend's operand, noting the row length of the array it passes: a view's
        base when read at the step itself, else the buffer read."""
        o = super()._operand(ref, mode)
        if o is not None and o.kind == "rows":
            buf = ref.buf
            if buf.view and ref.offset == 0 and ref.fill is None and not self._batchless(buf):
                buf = self.every[buf.view[0]]
            self.widths[o.code] = buf.dims[0]
        return o

    def _shifted(self, target: Ref):
        o = super()._shifted(target)
        if o.kind == "rows":
            buf = self.every[target.buf.view[0]] if target.buf.view else target.buf
            self.widths[o.code] = buf.dims[0]
        return o


def _launch(head: str, args: list, width: int = 96) -> str:
    """A launch: grid, block, then the arguments, as many to a line as fit."""
    lines, line = [head], INDENT
    for arg in args:
        if len(line) + len(arg) > width and line.strip():
            lines.append(line.rstrip())
            line = INDENT
        line += arg + ", "
    return "\n".join(lines + [line.rstrip(", ") + "))"])


def _written(kernel: Kernel, operands: dict) -> set:
    """The codes of the arrays a kernel writes."""
    targets = [operands.get(_key(i.target if i.target is not None else Ref(i.out))) for i in kernel.body]
    return {o.code for o in targets if o is not None}


def _owned(prog) -> set:
    """Buffers a kernel may read without a copy: the step buffers and adjoints the module
    allocates itself, C-contiguous."""
    names = {i.out.name for i in instructions(prog.forward + prog.backward) if i.out.view is None
             and i.mode is Mode.STEP}
    return names | {g.name for g in prog.grads if g.view is None}
