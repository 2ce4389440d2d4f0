"""Kernel items -> CUDA C: one `extern "C" __global__` function per kernel and precision.

Input: a `Kernel` (compiler/group.py) with its operands as the numba backend finds them
(backends/numba/passes.py: what the caller passes, its kind, its first column), the row length of
each array passed, and which arrays the kernel writes. Output: CUDA C source text that CuPy's
RawKernel compiles as it is (NVRTC), that `nvcc -arch=sm_90 -c` compiles, and that g++ compiles
for the host with a small compatibility header (tests/cuda_standin_kernels.py).

The launch shape: one thread block per row (a batch row; for a kernel over all steps, a (t, b)
row), the block's threads striding over the row's columns, the blocks striding over the rows.
A row goes through the members' column tiles in program order, in the blocks the numba backend
forms (backends/numba/tiles.py: tiles of one width share a loop where column j of each needs
only what column j of the tiles before it wrote, which one thread computed). Thread t takes
columns t, t + blockDim, ... of every block, so a block needs the row's threads to meet at
__syncthreads() first only where it touches a column that another thread wrote since they last
met (an LSTM step needs none: its gates are tiles of the cell's width). So a kernel is one
launch, whatever its dependencies: splitting it into launches at those points would cost a
launch (several microseconds, the whole of a small step's pointwise work) per split, and a
thread per whole row would leave all but B threads of the GPU idle. A member that writes one
value per row (a rank-0 variable) runs on the block's first thread, between barriers.

Each formula is the op's scalar template rendered as C (rnndsl/core/scalar.py's c_expr), float
or double; spec lines are comments (escaped: no character of a spec can end one, splice the next
line, or end the Python string the module keeps the source in).
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...core import scalar
from ...core.ops import TABLE
from ...compiler.program import Kernel, Ref
from ..numba import tiles
from ..numba.passes import Operand
from ..numba.tiles import key as _key

# What every kernel source starts with: INFINITY and NAN come from math.h, which NVRTC (CuPy's
# compiler) does not include; nvcc and the host harness have them already.
PREAMBLE = """\
#ifndef RNNDSL_CUDA_PREAMBLE
#define RNNDSL_CUDA_PREAMBLE
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#endif"""

MAX_THREADS = 512          # per block: a row's columns, at most this many threads at once
_SAFE = re.compile(r"[A-Za-z0-9 \[\]()+\-*/=,.:_@<>{}!#%&|^~;$]")


def comment(text: str) -> str:
    """`// text`, with every character outside a safe set written as \\xNN: nothing of a spec
    can end the comment, continue it onto the next line (a final backslash), form a trigraph,
    or end the Python string that holds the source."""
    return "// " + "".join(c if _SAFE.fullmatch(c) else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                           for c in str(text))


def raw_string(name: str, text: str) -> str:
    """`name = r'''...'''`: CUDA source kept readable in the Python module. No spec text can
    end the string (comment() escapes quotes and backslashes); this checks it."""
    if "'''" in text or text.endswith("\\"):
        raise ValueError(f"{name} cannot be a raw string")
    return f"{name} = r'''\n{text.strip(chr(10))}\n'''"


def threads(kernel: Kernel) -> int:
    """Threads per block: the widest member's columns, in whole warps, at most MAX_THREADS."""
    widest = max(t.width for t in tiles.tiles(kernel))
    return min(MAX_THREADS, max(32, -(-widest // 32) * 32))


def render(kernel: Kernel, operands: dict, widths: dict, written: set, dtype) -> str:
    """The kernel's function for one precision: its parameters (the rows, then each distinct
    array once, in the order the caller passes them) and its body."""
    single = np.dtype(dtype) == np.float32
    live = tiles.in_memory(kernel, operands)            # a value kept in a register is not passed
    codes = list(dict.fromkeys(o.code for o in live.values()))
    names = {k: f"_o{codes.index(o.code)}" for k, o in live.items()}
    kinds = {o.code: (k, o) for k, o in live.items()}
    params = [("long long _rows", "// rows: one block each, striding")]
    params += [_param(i, code, *kinds[code], code in written, single) for i, code in enumerate(codes)]
    lines = [*(comment(line) for line in kernel.line.split("\n") if line),
             f'extern "C" __global__ void {kernel.name}_{"f32" if single else "f64"}(',
             *(f"    {decl}{',' if i < len(params) - 1 else ')'}  {note}" for i, (decl, note) in enumerate(params)),
             "{", "    for (long long _row = blockIdx.x; _row < _rows; _row += gridDim.x) {"]
    blocks = tiles.blocks(tiles.tiles(kernel), operands)
    registers = tiles.registers(kernel, blocks, operands)
    since: list = []                        # the tiles since the last barrier
    for block in blocks:
        if since and not _same_threads(since + block, operands):
            lines.append("        __syncthreads();        // the next block reads columns other threads wrote")
            since = []
        since += block
        lines += _block(block, operands, names, widths, registers, single)
    return "\n".join(lines + ["    }", "}"])


def _same_threads(some: list, operands: dict) -> bool:
    """Whether no column is written by one thread and touched by another among these tiles: all
    loop over columns (thread t takes j = t, t + blockDim, ...), so two accesses of an array at
    one column offset meet in one thread, and accesses at two offsets must not overlap where
    one of them writes; a value per row is written by the first thread only."""
    return all(t.width for t in some) and tiles.ordered(some, operands)


def _param(i: int, code: str, key: tuple, o: Operand, writes: bool, single: bool) -> tuple:
    """One parameter's declaration, and the Python expression the caller passes as a comment."""
    if o.kind == "flag":
        return f"long long _o{i}", comment(code)      # a Python bool arrives as a 64-bit integer
    base = "bool" if key[0] == "mask" else "float" if single else "double"
    return f"{'' if writes else 'const '}{base}* __restrict__ _o{i}", comment(code)


def _block(block: list, operands: dict, names: dict, widths: dict, registers: dict, single: bool) -> list:
    """One column block: a loop of the block's threads over its columns, or, for members with
    one value per row, the block's first thread."""
    body, last = [], None
    for tile in block:
        line = tile.instr.line
        if line and line != last:
            body += [comment(text) for text in str(line).split("\n") if text]
            last = line
        body += _member(tile, operands, names, widths, registers, single)
    head = (f"        for (long long _j = threadIdx.x; _j < {block[0].width}; _j += blockDim.x) {{" if block[0].width
            else "        if (threadIdx.x == 0) {")
    return [head] + ["            " + line for line in body] + ["        }"]


def _member(tile, operands: dict, names: dict, widths: dict, registers: dict, single: bool) -> list:
    """One tile at column _j: target (+)= formula, or a register holding the value."""
    instr = tile.instr
    template = TABLE[instr.op].scalar

    def place(ref):
        o = operands[_key(ref)]
        return (o.code, tiles.column(o, tile)) if o.kind == "rows" else None

    def index(ref):
        o = operands[_key(ref)]
        return registers.get(place(ref)) or _index(Operand(o.code, o.kind, tiles.column(o, tile)), names[_key(ref)], widths)
    bound = {name: (index(a) if isinstance(a, Ref) else literal(a, single)) for name, a in zip(template.args, instr.args)}
    bound.update({k: literal(v, single) for k, v in instr.attrs})
    value = scalar.c_expr(template, bound, np.float32 if single else np.float64)
    where = instr.target if instr.target is not None else Ref(instr.out)
    register = registers.get(place(where))
    if register:
        return [f"const {'float' if single else 'double'} {register} = {value};"]
    write = f"{index(where)} {'+=' if instr.accumulate else '='} {value};"
    if not where.offset:
        return [write]
    guard = names[("keep",) + _key(where)]                 # d[t+k]: the whole step takes it or not
    mask = names.get(("mask",) + _key(where))              # d[t+1]: and only rows with a step t+1
    return [f"if ({guard}{f' && {mask}[_row]' if mask else ''}) {write}"]


def _index(o: Operand, name: str, widths: dict) -> str:
    column = f"{o.start} + _j" if o.start else "_j"
    if o.kind == "rows":
        return f"{name}[_row * {widths[o.code]} + {column}]"
    return {"row": f"{name}[_row]", "cols": f"{name}[{column}]", "one": f"{name}[0]", "flag": name}[o.kind]


def literal(v, single: bool) -> str:
    """A constant as a C literal of the kernel's precision."""
    v = float(v)
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(v) + ("f" if single else "")
    return f"({text})" if v < 0 or text.startswith("-") else text
