"""A recurrence's whole loop as one compiled function, for small batches.

At B=1 a step's products take a few microseconds and Python's cost per step is the time: the
GEMM call, the kernel call and indexing the step's rows, about 17 us forward and 19 backward
for an LSTM at H=128 here. So where every item of a loop is a kernel or a product with a
parameter matrix, the module also gets the loop as one @njit function, the products as plain
loops (_mm, _mm_add: numba's np.dot would need SciPy's BLAS, a second OpenBLAS in the process),
and forward() and backward() call it when B times the loop's multiply-adds per row is at most
SMALL, in float32 (a kernel with a transcendental has no float64 copy).

SMALL is measured: these loops against NumPy's GEMM call at (1, 128) @ (128, 512) take 4.7
against 3.7 us, at (4, 128) @ (128, 512) 13.9 against 6.7 us, at (1, 256) @ (256, 1024) 19.7
against 15.4 us; against the 10 us or so of Python per product and kernel they save, the
compiled loop wins up to about 2^18 multiply-adds a step.
"""
from __future__ import annotations

import ast

from ...compiler.program import Instr, Kernel, Loop, Mode
from ..numpy.passes import _gemm
from . import tiles

SMALL = 2 ** 18


def _mm(a, w, out):
    """out = a @ w, row by row (the inner loop over w's contiguous rows vectorises)."""
    for m in range(a.shape[0]):
        for n in range(w.shape[1]):
            out[m, n] = 0.0
        for k in range(a.shape[1]):
            x = a[m, k]
            for n in range(w.shape[1]):
                out[m, n] += x * w[k, n]


def _mm_add(a, w, out):
    """out += a @ w."""
    for m in range(a.shape[0]):
        for k in range(a.shape[1]):
            x = a[m, k]
            for n in range(w.shape[1]):
                out[m, n] += x * w[k, n]


HELPERS = {"_mm": _mm, "_mm_add": _mm_add}


def body(passes, loop: Loop) -> tuple | None:
    """(the loop body's lines, multiply-adds per row) or None where an item is neither a kernel
    nor a product with a parameter matrix, or reads through an array call (a mask, a broadcast)."""
    lines, macs = [], 0
    for item in loop.body:
        if isinstance(item, Kernel):
            operands = passes._operands(item, loop)
            if operands is None:
                return None
            codes = dict.fromkeys(o.code for o in tiles.in_memory(item, operands).values())
            lines.append(f"{item.name}_f32(_B, {', '.join(codes)})")
            continue
        g = _gemm(item) if isinstance(item, Instr) and item.mode is Mode.STEP else None
        if not g:
            return None
        weight = item.args[g[1]].buf
        macs += weight.dims[0] * weight.dims[1]
        line = _product(passes, item, g, f"_wT_{weight.name}" if g[2] else weight.name, loop)
        if line is None:
            return None
        lines += line
    if any("_xp." in line or "_np." in line for line in lines):
        return None
    return lines, macs


def _product(passes, instr: Instr, g, weight: str, loop: Loop) -> list | None:
    if instr.args[g[0]].offset and passes._batchless_fill(instr.args[g[0]]):
        return None                    # a learned start has no batch axis: (n,) where rows are (B, n)
    rows = passes._arg(instr.args[g[0]], Mode.STEP, None)
    target = instr.target
    if target is None:
        return None if instr.accumulate else [f"_mm({rows}, {weight}, {passes._step(instr.out)})"]
    if target.fill is not None or target.offset > 0 or target.buf.rank != instr.out.rank:
        return None
    if target.offset == 0:
        return [f"{'_mm_add' if instr.accumulate else '_mm'}({rows}, {weight}, {passes._step(target.buf)})"]
    if not instr.accumulate:
        return None
    return [f"if {passes._keeps(target, loop)}:",
            f"    _mm_add({rows}, {weight}, {target.buf.name}[_t{target.offset:+d}])"]


def function(name: str, loop: Loop, lines: list, jit: str) -> tuple:
    """(the @njit function's source, its parameters): every name the body reads that is not
    the step or a module function (min is an op, so no spec names a variable so; a variable
    may be called range or len: the module's own range is _range)."""
    steps = f"_range(_T_{loop.axis} - 1, -1, -1)" if loop.reverse else f"_range(_T_{loop.axis})"
    text = "\n".join(lines)
    read = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
    own = {n for n in read if n.endswith("_f32") and n.startswith("_k")} | set(HELPERS) | {"min"}
    params = [f"_T_{loop.axis}", "_B"] + sorted(read - own - {"_t", f"_T_{loop.axis}", "_B"})
    source = "\n".join([f"@{jit}", f"def {name}({', '.join(params)}):", f"    for _t in {steps}:"]
                       + ["        " + line for line in lines])
    return source, params
