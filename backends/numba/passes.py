"""The numba backend's passes: the NumPy backend's, with each kernel of a loop one compiled call.

A kernel (compiler/group.py) becomes an @njit function over the batch rows: each row goes
through every member in program order, over its columns, with the member's formula rendered
from its op's scalar template (rnndsl/core/scalar.py). A step's values then pass through
memory once, and the per-call cost of NumPy is paid once per kernel instead of once per op.
Each kernel is written twice, for float32 and float64 (their constants differ, and float32's
tanh is the vectorisable rational form); forward() and backward() pick one by _dtype.
A kernel outside loops runs over all T*B rows at once (or B, per sequence); one that would
need a value broadcast over time runs op by op, as in the NumPy backend.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np

from ...compiler.program import Buf, Kernel, Loop, Mode, Ref, Role, instructions
from ...core import scalar
from ...core.ops import TABLE, Op
from . import ctc, loops, tiles
from .tiles import key as _key
from ..numpy.passes import INDENT, Passes, _comments

JIT = 'numba.njit(error_model="numpy", fastmath={"contract"}, cache=globals().get("__file__", "").endswith(".py"))'


@dataclass(frozen=True)
class Operand:
    code: str          # what the caller passes (evaluated at the step)
    kind: str          # "rows" (B, W) | "row" (B,) one value per row | "cols" (W,) | "one" (1,)
    start: int         # first column (a view's offset into the base the caller passes)


class KernelPasses(Passes):
    imports = ("import numba",)
    compiles_loops = True          # whole loops as @njit functions for a few rows (loops.py)

    def __init__(self, prog, dtype: str = "float64"):
        super().__init__(prog, dtype)
        self.kernels: list = []
        self.loops: list = []              # compiled whole loops, for small batches (loops.py)
        self.every = {b.name: b for b in prog.values + prog.grads}

    def definitions(self) -> list:
        return self._ctc_loops() + self._kernel_definitions() + self._loop_definitions()

    def _loop_definitions(self) -> list:
        if not self.loops:
            return []
        sources = [inspect.getsource(f) for f in loops.HELPERS.values()]
        binds = [f"{name} = {JIT}({name})" for name in loops.HELPERS]
        return ["# ---- whole loops compiled, for a few rows: products as plain loops (loops.py) ----",
                *sources, "\n".join(binds), *self.loops]

    def _loop(self, loop: Loop, backward: bool) -> None:
        """The Python loop, and where every item is a kernel or a product with a parameter
        matrix, the same loop compiled, which a few rows (B times the multiply-adds a row
        takes per step at most loops.SMALL) run instead in float32."""
        found = loops.body(self, loop) if self.compiles_loops else None
        if found is None:
            super()._loop(loop, backward)
            return
        lines, macs = found
        name = f"_loop{len(self.loops) + 1}"
        source, params = loops.function(name, loop, lines, JIT)
        self.loops.append(source)
        self.put(f"if _single and _B * {macs} <= {loops.SMALL}:        # a few rows: the loop compiled")
        for p in params:
            if p.startswith("_wT_"):
                self.put(f"{INDENT}{p} = _xp.ascontiguousarray({p[4:]}.T)")
        self.put(f"{INDENT}{name}({', '.join(params)})")
        self.put("else:")
        self.depth += 1
        self._loop_weights(loop)
        self._loop_steps(loop, backward)
        self.depth -= 1

    def _kernel_definitions(self) -> list:
        if not self.kernels:
            return []
        helpers = [f"{name} = {JIT}(_{name}_python)" for name in scalar.PY_HELPERS]
        sources = [_helper_source(n, f) for n, f in scalar.PY_HELPERS.items()]
        return ["# ---- kernels: each a loop over the batch rows, compiled by numba ----",
                *sources, "\n".join(helpers), *self.kernels]

    def _ctc_loops(self) -> list:
        """CTC's recursions compiled (backends/numba/ctc.py), replacing the NumPy ones above."""
        if not any(i.op in (Op.CTC, Op.CTC_VJP) for i in instructions(self.prog.forward + self.prog.backward)):
            return []
        sources = [inspect.getsource(f) for f in ctc.LOOPS.values()]
        binds = [f"{name} = {JIT}({f.__name__})" for name, f in ctc.LOOPS.items()]
        return ["# ---- CTC's alpha and beta recursions: compiled loops replace the NumPy forms above ----",
                *sources, "\n".join(binds)]

    def _prologue(self) -> None:
        self.put("_single = _np.dtype(_dtype) == _np.float32")

    def _kernel(self, kernel: Kernel, loop: Loop | None, backward: bool) -> None:
        operands = self._operands(kernel, loop)
        if operands is None:
            super()._kernel(kernel, loop, backward)
            return
        self.put(_comments(kernel.line))
        self.last_line = None
        if kernel.mode is not Mode.STEP:
            self._allocate(kernel)
        axis = kernel.body[0].out.axis
        rows = f"_T_{axis} * _B" if kernel.mode is Mode.SEQ else "_B"
        args = ", ".join([rows] + _codes(tiles.in_memory(kernel, operands)))
        dtypes = [np.float32] if _transcendental(kernel) else [np.float32, np.float64]
        for dtype in dtypes:
            self.kernels.append(_render(kernel, operands, dtype))
        if len(dtypes) == 2:
            self.put(f"({kernel.name}_f32 if _single else {kernel.name}_f64)({args})")
        else:               # float64 tanh and exp: NumPy's are vectorised, numba's libm calls not
            self.put("if _single:")
            self.put(f"{INDENT}{kernel.name}_f32({args})")
            self.put("else:")
            self.depth += 1
            super()._kernel(kernel, loop, backward)
            self.depth -= 1
        if not backward and loop is None:
            for instr in kernel.body:
                self._views_of(instr.out.name)

    def _allocate(self, kernel: Kernel) -> None:
        """The arrays a kernel outside loops writes whole: a NumPy call would have made them."""
        for instr in kernel.body:
            b = instr.out
            if instr.target is None and b.view is None:
                lead = f"(_T_{b.axis}, _B)" if b.axis else "(_B,)"
                self.put(f"{b.name} = _xp.empty({lead} + {tuple(b.dims)!r}, dtype=_dtype)")

    def _operands(self, kernel: Kernel, loop: Loop | None) -> dict | None:
        """key -> Operand for every array a kernel reads or writes, or None where it cannot be
        one loop over rows (a member without a scalar template, a value broadcast over time)."""
        found: dict = {}
        for instr in kernel.body:
            if TABLE[instr.op].scalar is None:
                return None
            target = instr.target if instr.target is not None else Ref(instr.out)
            if target.offset:                  # d[t-1] += ...: taken or not for the whole step
                found[("keep",) + _key(target)] = Operand(self._keeps(target, loop), "flag", 0)
                found[_key(target)] = self._shifted(target)
            if target.offset > 0:              # d[t+1] += ...: by the rows whose t+1 is inside
                found[("mask",) + _key(target)] = Operand(f"_valid_{target.buf.axis}[{self._later(target)}]", "row", 0)
            for ref in ([] if target.offset else [target]) + instr.refs:
                operand = found.get(_key(ref)) or self._operand(ref, kernel.mode)
                if operand is None:
                    return None
                found[_key(ref)] = operand
        return found

    def _batchless_fill(self, ref: Ref) -> bool:
        """A read before the start may give a learned init: a parameter, without batch axes."""
        if ref.fill is not None:
            return ref.fill.role is Role.PARAM
        return ref.offset < 0 and self.carried.get(ref.buf.name) is not None

    def _shifted(self, target: Ref) -> Operand:
        """An adjoint at another step: row t+k of its base (when the step does not take the
        contribution, t+k may lie outside; the kernel then does not touch it)."""
        buf, start = target.buf, 0
        if buf.view:
            buf, start = self.every[buf.view[0]], target.buf.view[1]
        step = f"_t{target.offset:+d}" if target.offset < 0 else self._later(target)
        return Operand(f"{buf.name}[{step}]", "rows" if buf.rank else "row", start)

    def _later(self, target: Ref) -> str:
        """Row t+k (k > 0) where it exists, else the last one (the kernel then does not touch it)."""
        return f"min(_t{target.offset:+d}, _T_{target.buf.axis} - 1)"

    def _batchless(self, buf: Buf) -> bool:
        whole = self.every.get(buf.view[0], buf) if buf.view else buf
        return any(b.role is Role.PARAM or b.of in self.batchless or b.name in self.batchless for b in (buf, whole))

    def _operand(self, ref: Ref, mode: Mode) -> Operand | None:
        buf = ref.buf
        if self._batchless(buf):                            # a parameter, or made of parameters only
            return Operand(buf.name if buf.rank else f"_xp.reshape({buf.name}, (1,))",
                           "cols" if buf.rank else "one", 0)
        kind = "rows" if buf.rank else "row"
        if mode is Mode.SEQ and buf.axis is None:
            return None                                     # (B, ...) under (T, B, ...) rows
        base, start = buf, 0
        if buf.view and ref.offset == 0 and ref.fill is None:
            base, start = self.every[buf.view[0]], buf.view[1]         # the base: C-contiguous rows
        if mode is Mode.STEP:
            whole = self._step(base) if base.axis else base.name       # a static base: all steps
            code = whole if base is not buf else self._read(ref, Mode.STEP)
            if ref.offset and self._batchless_fill(ref):        # one row for all: (B, ...) here
                code = f"_xp.broadcast_to({code}, (_B,) + {tuple(buf.dims)!r})"
        else:
            code = base.name if base is not buf else self._read(ref, mode)
            if mode is Mode.SEQ:
                code = f"_xp.reshape({code}, (-1,{' ' + str(base.dims[0]) if base.rank else ''}))"
        return Operand(code, kind, start)


def _transcendental(kernel: Kernel) -> bool:
    """Whether a member calls a primitive whose float64 numba form is a libm call per element
    (exp, log, tanh, ...: no SVML here), several times slower than NumPy's vectorised loops."""
    def calls(e) -> set:
        return ({e.prim} | set().union(*map(calls, e.args))) if isinstance(e, scalar.Call) else set()
    return any(scalar.PRIMS[p].libm for i in kernel.body for p in calls(TABLE[i.op].scalar.body))


def _codes(operands: dict) -> list:
    """What the caller passes: each distinct array once."""
    return list(dict.fromkeys(o.code for o in operands.values()))


def _render(kernel: Kernel, operands: dict, dtype) -> str:
    """The kernel's source for one dtype: per row, its members' tiles in blocks of one column
    loop (tiles.py), values no other loop touches in registers."""
    single = np.dtype(dtype) == np.float32
    live = tiles.in_memory(kernel, operands)
    position = {code: i for i, code in enumerate(_codes(live))}
    names = {k: f"_o{position[o.code]}" for k, o in live.items()}
    params = [f"_o{i}" for i in range(len(position))]
    lines = [f"@{JIT}", f"def {kernel.name}_{'f32' if single else 'f64'}(_B, {', '.join(params)}):",
             f"{INDENT}for _b in range(_B):"]
    blocks = tiles.blocks(tiles.tiles(kernel), operands)
    registers = tiles.registers(kernel, blocks, operands)
    for block in blocks:
        statements = [_member(t, operands, names, registers, single) for t in block]
        if block[0].width:
            lines += [f"{2 * INDENT}for _j in range({block[0].width}):"] + [3 * INDENT + line for st in statements for line in st]
        else:
            lines += [2 * INDENT + line for st in statements for line in st]
    return "\n".join(lines)


def _member(tile, operands: dict, names: dict, registers: dict, single: bool) -> list:
    """One tile at column j: target[b, j] (+)= formula(arguments[b, j])."""
    instr = tile.instr
    template = TABLE[instr.op].scalar

    def index(ref):
        o = operands[_key(ref)]
        at = tiles.column(o, tile)
        return registers.get((o.code, at)) if o.kind == "rows" and (o.code, at) in registers else \
            _index(Operand(o.code, o.kind, at), names[_key(ref)])
    bound = {name: (index(a) if isinstance(a, Ref) else _literal(a, single)) for name, a in zip(template.args, instr.args)}
    bound.update({k: _literal(v, single) for k, v in instr.attrs})
    value = scalar.py_expr(template, bound, np.float32 if single else np.float64)
    where = instr.target if instr.target is not None else Ref(instr.out)
    write = f"{index(where)} {'+=' if instr.accumulate else '='} {value}"
    if where.offset > 0:
        return [f"if {names[('keep',) + _key(where)]} and {names[('mask',) + _key(where)]}[_b]:", INDENT + write]
    return [f"if {names[('keep',) + _key(where)]}:", INDENT + write] if where.offset else [write]


def _index(o: Operand, name: str) -> str:
    column = f"{o.start} + _j" if o.start else "_j"
    return {"rows": f"{name}[_b, {column}]", "row": f"{name}[_b]", "cols": f"{name}[{column}]",
            "one": f"{name}[0]", "flag": name}[o.kind]


def _literal(v, single: bool) -> str:
    v = float(v)
    text = repr(v) if math.isfinite(v) else ("np.nan" if math.isnan(v) else ("np.inf" if v > 0 else "(-np.inf)"))
    return f"np.float32({text})" if single else text


def _helper_source(name: str, fn) -> str:
    """A scalar helper's source under a private name; the module njits it as `name`."""
    return inspect.getsource(fn).replace(f"def {name}(", f"def _{name}_python(", 1)
