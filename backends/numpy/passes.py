"""Program -> the source of forward() and backward(): the passes of an emitted module.

Spec names are used as written and the adjoint of v is d_v; every name this code makes for
itself begins with _ (sizes, masks, temporaries, and the module's globals and builtins through
their _-aliases, which backends/numpy/emit.py writes): the checker refuses spec names of those forms,
so none can shadow one of these. Spec lines appear only in comments made by `_comment`.
"""
from __future__ import annotations

import math

from ...core import kernels
from ...core.ops import TABLE, Kind, Op, elementwise, result_rank
from ...compiler.program import Buf, Instr, Kernel, Loop, Mode, Program, Ref, Role, instructions

INDENT = "    "


class Passes:
    """forward() and backward() of one program, as source text."""

    imports: tuple = ()            # modules the passes need besides NumPy (a kernel backend's)

    def definitions(self) -> list:
        """Source of functions the passes call that this class writes itself (none here)."""
        return []

    def _prologue(self) -> None:
        """Lines at the start of forward() and backward(), where _dtype is known (none here)."""

    def __init__(self, prog: Program, dtype: str = "float64"):
        self.prog, self.dtype = prog, str(dtype)
        # adjoints without batch axes: of parameters and of values made from them only (views
        # of a fused one included: fusion leaves them no instruction of their own)
        self.batchless = {b.name: b.rank for b in prog.params}      # primal name -> rank
        self.batchless.update({i.out.name: i.out.rank for i in instructions(prog.forward) if i.mode is Mode.PARAM})
        self.batchless.update({b.name: b.rank for b in prog.values if b.role is Role.PARAM})
        self.scratch = set(prog.scratch)
        self.adjoint_names = {g.of: g.name for g in prog.grads if g.view is None}     # primal -> adjoint
        self.carried = _carried(prog)
        # indexes, so that finding a buffer or the views of a base is not a scan per call
        self.bufs: dict = {}
        self.views: dict = {}
        for b in prog.values:
            self.bufs.setdefault(b.name, b)
            if b.view:
                self.views.setdefault(b.view[0], []).append(b)
        self.lines: list = []
        self.depth = 1
        self.loop_axis = None         # the axis of the loop being written: other sequences are read whole

    def put(self, text: str) -> None:
        for line in text.split("\n"):
            self.lines.append(INDENT * self.depth + line)

    # -- forward ------------------------------------------------------------------------------
    def forward(self) -> str:
        p = self.prog
        self.lines = [f'def forward(_params, _inputs, _lengths=None, _dtype=np.{self.dtype}, _carry=None):',
                      f'{INDENT}"""Every value of the forward pass (the tape), and the loss. Inputs are',
                      f'{INDENT}time-major; lengths {{axis: (B,) ints}} default to the padded length; carry',
                      f'{INDENT}{{variable: (B, ...)}} replaces a recurrence\'s start (the last window\'s',
                      f'{INDENT}tape["_final"]), and no gradient flows into it."""']
        self.depth = 1
        axes = sorted({b.axis for b in p.inputs if b.axis})
        first = p.inputs[0] if p.inputs else None
        self.put("_lengths = _dict(_lengths or {})")
        self._prologue()
        for a in axes:
            seq = next(b for b in p.inputs if b.axis == a)
            self.put(f"_lengths.setdefault({a!r}, _np.full(_np.shape(_inputs[{seq.name!r}])[1], "
                     f"_np.shape(_inputs[{seq.name!r}])[0]))")
        self.put(f"_B = _len(_lengths[{axes[0]!r}])" if axes else f"_B = _len(_inputs[{first.name!r}])")
        for a in axes:
            self.put(f"_len_{a} = _xp.asarray(_lengths[{a!r}])")
            seq = next(b for b in p.inputs if b.axis == a)
            self.put(f"_T_{a} = _inputs[{seq.name!r}].shape[0]")
            self.put(f"_valid_{a} = _xp.arange(_T_{a})[:, None] < _len_{a}[None, :]")
            self.put(f"_full_{a} = _bool(_valid_{a}.all())          # no padding: reads past t need no mask")
        self.put("# inputs, with padded steps zeroed (when there are any): what a pad holds never matters")
        for b in p.inputs:
            self.put(self._input(b))
        for b in p.params:
            self.put(f"{b.name} = _xp.asarray(_params[{b.name!r}], dtype=_dtype)")
        self._allocate_steps(p.forward)
        self._zeros(p.forward)
        self._carry_prologue()
        self._items(p.forward)
        self._finals()
        keep = sorted(set(self._context_names()) | set(p.tape) | set(p.outputs) | {p.loss.name, "_final"})
        self.put(f"_tape = {_tape_dict(keep)}")
        self.put(f"_tape['_total_loss'] = _float({p.loss.name}.mean())")
        self.put("return _tape")
        return "\n".join(self.lines)

    def _input(self, b: Buf) -> str:
        raw = f"_xp.asarray(_inputs[{b.name!r}])"
        if b.axis is None:
            return f"{b.name} = {raw}" + (".astype(_dtype)" if b.kind is Kind.FLOAT else "")
        mask = f"_valid_{b.axis}" + "[..., None]" * (b.rank if b.kind is Kind.FLOAT else 0)
        zero = "0.0" if b.kind is Kind.FLOAT else "-1"     # -1: no class (an absent target)
        cast = ".astype(_dtype)" if b.kind is Kind.FLOAT else ""
        whole = f"_xp.asarray(_inputs[{b.name!r}]{', dtype=_dtype' if b.kind is Kind.FLOAT else ''})"
        return f"{b.name} = {whole} if _full_{b.axis} else _xp.where({mask}, {raw}, {zero}){cast}"

    def _allocate_steps(self, items) -> None:
        """Preallocate every buffer written step by step, and the views into them."""
        stepped = []
        for instr in instructions(items):
            b = instr.out
            if instr.mode is Mode.STEP and b.view is None and b.name not in stepped:
                stepped.append(b.name)
                dt = "_dtype" if b.kind is Kind.FLOAT else "_np.int64"
                lead = _lead(b, b.name in self.scratch)
                self.put(f"{b.name} = _xp.empty({lead} + {tuple(b.dims)!r}, dtype={dt})")
        for name in stepped:
            self._views_of(name)

    def _carry_prologue(self) -> None:
        for name, default in sorted(self.carried.items()):
            start = default or _empty_step(self._buf(name))
            self.put(f"_carried_{name} = _carry is not None and {name!r} in _carry")
            self.put(f"_fill_{name} = _xp.asarray(_carry[{name!r}], dtype=_dtype) if _carried_{name} else {start}")

    def _finals(self) -> None:
        """Each carried variable at each sequence's last step: the next window's carry."""
        finals = ", ".join(f"{n!r}: {n}[_len_{self._axis_of(n)} - 1, _xp.arange(_B)]" for n in sorted(self.carried))
        self.put(f"_final = {{{finals}}}")

    def _context_names(self) -> list:
        """Names backward() and the caller read besides buffers: sizes, masks, carried starts."""
        return (["_B", "_dtype"] + [f"_{k}_{a}" for a in _axes(self.prog) for k in ("T", "len", "valid", "full")]
                + [f"{k}_{n}" for n in sorted(self.carried) for k in ("_fill", "_carried")])

    def _shape(self, g: Buf) -> str:
        """An adjoint's shape, from the program (the primal may not be on the tape)."""
        if g.of in self.batchless:
            return repr(tuple(g.dims))
        return f"{_lead(g, not g.axis or g.name in self.scratch)} + {tuple(g.dims)!r}"

    def _adjoint_of(self, name: str) -> str:
        return self.adjoint_names[name]

    def _axis_of(self, name: str) -> str:
        return self._buf(name).axis

    def _buf(self, name: str) -> Buf:
        return self.bufs[name]

    def _zeros(self, items) -> None:
        """One zero step per buffer that a loop reads before its start (no state init)."""
        bufs = {r.buf.name: r.buf for i in instructions(items) if i.mode is Mode.STEP for r in i.refs
                if r.offset and r.fill is None and r.buf.axis and not (r.offset < 0 and r.buf.name in self.carried)}
        for name, buf in sorted(bufs.items()):
            self.put(f"_zero_{name} = {_empty_step(buf)}")

    def _views_of(self, base: str) -> None:
        for b in self.views.get(base, ()):
            self.put(f"{b.name} = {base}[..., {b.view[1]}:{b.view[2]}]")

    def _items(self, items, backward: bool = False) -> None:
        self.last_line = None
        for item in items:
            if isinstance(item, Loop):
                self._loop(item, backward)
                self.last_line = None
            else:
                self._item(item, None, backward)

    def _item(self, item, loop: Loop | None, backward: bool) -> None:
        """An instruction (after a comment quoting its spec lines, unless the last one did), or
        a kernel."""
        if isinstance(item, Kernel):
            self._kernel(item, loop, backward)
            return
        if item.line and item.line != self.last_line:
            self.put(_comments(item.line))
            self.last_line = item.line
        self.put(self._instr(item, loop if backward else None))
        if not backward and loop is None:
            self._views_of(item.out.name)

    def _kernel(self, kernel: Kernel, loop: Loop | None, backward: bool) -> None:
        """A kernel, member by member: NumPy has no loop of its own to fuse them into (a kernel
        backend overrides this with one call)."""
        for instr in kernel.body:
            self._item(instr, loop, backward)

    def _step_gemm(self, rows: str, weight: str, transposed: bool, into: list) -> str:
        """A step's product with a weight matrix W, through W.T made contiguous once per call
        (_wT_W, before the loop): x @ W.T as x @ _wT_W, and dy @ W as (_wT_W @ dy.T).T. OpenBLAS
        runs both a quarter faster than on W itself at these shapes (M = B rows)."""
        wt = f"_wT_{weight}"
        if transposed:
            return f"_xp.matmul({', '.join([rows, wt] + into)})"
        if into:                            # written in place: the orientation of `out`
            return f"_xp.matmul({', '.join([rows, weight] + into)})"
        return f"_xp.matmul({wt}, {rows}.T).T"

    def _loop(self, loop: Loop, backward: bool) -> None:
        self._loop_weights(loop)
        self._loop_steps(loop, backward)

    def _loop_weights(self, loop: Loop) -> None:
        weights = sorted({i.args[g[1]].buf.name for i in instructions(loop.body) for g in [_gemm(i)] if g})
        for w in weights:
            self.put(f"_wT_{w} = _xp.ascontiguousarray({w}.T)")

    def _loop_steps(self, loop: Loop, backward: bool) -> None:
        steps = f"_range(_T_{loop.axis} - 1, -1, -1)" if loop.reverse else f"_range(_T_{loop.axis})"
        direction = "backward" if loop.reverse else "forward"
        self.put(f"# {'adjoint of the ' if backward else ''}recurrence {', '.join(loop.members)}, "
                 f"running {direction} over {loop.axis}")
        self.put(f"for _t in {steps}:")
        self.depth += 1
        self.last_line = None
        self.loop_axis = loop.axis
        for item in loop.body:
            self._item(item, loop, backward)
        self.loop_axis = None
        self.depth -= 1

    # -- instructions --------------------------------------------------------------------------
    def _instr(self, instr: Instr, loop: Loop | None = None) -> str:
        if instr.target is not None and not instr.accumulate:
            return self._write(instr)
        if instr.accumulate:
            return self._accumulate(instr, loop)
        if instr.mode is Mode.STEP and instr.out.axis is not None:
            dest = self._step(instr.out)
            if _writes_out(instr):
                return self._call(instr, out=dest)
            return f"{dest if dest.endswith(']') else dest + '[...]'} = {self._call(instr)}"
        return f"{instr.out.name} = {self._call(instr)}"

    def _step(self, buf: Buf) -> str:
        """Step t of a buffer written step by step: the buffer itself where it holds one step,
        or where it is a sequence over another axis (attention reads enc[s] whole at each t)."""
        if buf.base in self.scratch or self._other_axis(buf):
            return buf.name
        return f"{buf.name}[_t]"

    def _other_axis(self, buf: Buf) -> bool:
        return self.loop_axis is not None and buf.axis is not None and buf.axis != self.loop_axis

    def _call(self, instr: Instr, out: str | None = None) -> str:
        """The call computing an instruction's value, writing it into `out` when given."""
        into = [f"out={out}"] if out else []
        d = TABLE[instr.op]
        ranks = tuple(_rank(a) for a in instr.args)
        rank = result_rank(instr.op, ranks, instr.attr)
        args = [self._arg(a, instr.mode, rank if elementwise(instr.op) else None) for a in instr.args]
        if d.ufunc:
            consts = [_number(instr.attr[k]) for k, _ in d.attrs]
            return f"_xp.{d.ufunc}({', '.join(args + consts + into)})"
        outer = self._outer_sum(instr)
        if outer:
            return outer
        gemm = _gemm(instr)
        if gemm and _two_axes(instr):           # (S, B, ...) rows at a step: one GEMM over both
            a, b = args[gemm[0]], args[gemm[1]] + (".T" if gemm[2] else "")
            return f"_gemm(_xp, {a}, {b})"
        if gemm:
            a, b = args[gemm[0]], args[gemm[1]] + (".T" if gemm[2] else "")
            if instr.mode is Mode.STEP:
                return self._step_gemm(a, instr.args[gemm[1]].buf.name, gemm[2], into)
            return f"_gemm(_xp, {a}, {b})"
        if instr.op is Op.COPY:
            return self._copy(instr, args[0])
        if instr.op is Op.ONEHOT:
            return f"_onehot(_xp, {args[0]}, {instr.attr['classes']}, _dtype)"
        extra = [f"{k}={_number(v)}" for k, v in instr.attrs]
        if d.ranked:
            extra.append(f"ranks={ranks!r}")
        extra += self._context(instr)
        return f"_{d.forward.__name__}(_xp, {', '.join(args + extra + into)})"

    def _copy(self, instr: Instr, arg: str) -> str:
        """A copy, broadcast when a value without time (or batch) fills a sequence (or a
        per-sequence value): `v[t] = tanh(b)`."""
        out, src = instr.out, instr.args[0]
        if instr.accumulate or not isinstance(src, Ref) or out.dims is None or None in out.dims:
            return arg
        if instr.mode is Mode.SEQ and out.axis and not src.buf.axis:
            return f"_xp.array(_xp.broadcast_to({arg}, (_T_{out.axis}, _B) + {tuple(out.dims)!r}))"
        if instr.mode is Mode.STATIC and src.buf.role is Role.PARAM and out.role is not Role.PARAM:
            return f"_xp.array(_xp.broadcast_to({arg}, (_B,) + {tuple(out.dims)!r}))"
        return arg

    def _context(self, instr: Instr) -> list:
        ctx = TABLE[instr.op].context
        inner = [a.buf.inner for a in instr.args if isinstance(a, Ref) and a.buf.inner]
        axes = inner or [a.buf.axis for a in instr.args if isinstance(a, Ref) and a.buf.axis]
        if ctx == "valid":
            return [f"valid=_valid_{axes[0]}"]
        if ctx == "lengths":
            return [f"lengths=_len_{axes[0]}"]
        if ctx == "seq_lengths":
            return [f"lengths=({', '.join(f'_len_{a}' for a in axes)},)"]
        return []

    def _arg(self, a, mode: Mode, rank: int | None) -> str:
        """The code that reads an argument in a mode, aligned to `rank` (scalars broadcast)."""
        if not isinstance(a, Ref):
            return _number(a)
        code = self._read(a, mode)
        if rank is not None and _rank(a) < rank:
            code = f"{code}[{', '.join(['...'] + ['None'] * (rank - _rank(a)))}]"
        return code

    def _read(self, r: Ref, mode: Mode) -> str:
        b = r.buf
        if b.axis is None:
            return b.name
        fill = r.fill.name if r.fill is not None else f"_zero_{b.name}"
        if r.offset < 0 and b.name in self.carried:
            fill = f"_fill_{b.name}"
        masked = r.offset > 0 and b.role is not Role.INPUT
        if mode is Mode.STEP:
            if r.offset == 0:
                return self._step(b)
            s = f"_t{r.offset:+d}"
            inside = f"{s} >= 0" if r.offset < 0 else f"{s} < _T_{b.axis}"
            value = f"{b.name}[{s}]"
            if masked:                      # only a batch with shorter sequences needs the mask
                value = f"({value} if _full_{b.axis} else _xp.where(_valid_{b.axis}[{s}]{_expand(b)}, {value}, {fill}))"
            return f"({value} if {inside} else {fill})"
        if r.offset == 0:
            return b.name
        valid = f"_valid_{b.axis}" if masked else "None"
        return f"_shift(_xp, {b.name}, {r.offset}, {self._seq_fill(r)}, {valid})"

    def _seq_fill(self, r: Ref) -> str:
        """What a read of a whole sequence at an offset gives before its start: the state init
        (or a carried state), or None for zeros."""
        if r.fill is not None:
            return r.fill.name
        return f"_fill_{r.buf.name}" if r.offset < 0 and r.buf.name in self.carried else "None"

    def _outer_sum(self, instr: Instr) -> str:
        """A recurrent weight's gradient, sum over t of dy[t] x[t-k]^T, without the shifted copy
        of x that a read at an offset makes (x at t-k before the start is the state's fill)."""
        if instr.op is not Op.MATMUL_VJP:
            return ""
        a, x = instr.attr, instr.args[1]
        if not (instr.mode is Mode.SEQ and a.get("summed") == 1
                and (a.get("ra"), a.get("rb"), a.get("side")) == (2, 1, 0)
                and isinstance(x, Ref) and x.offset and x.buf.axis is not None
                and (x.offset < 0 or self._seq_fill(x) == "None")):
            return ""
        dy = self._arg(instr.args[0], Mode.SEQ, None)
        valid = f", _valid_{x.buf.axis}" if x.offset > 0 and x.buf.role is not Role.INPUT else ""
        return f"_outer_sum_shifted(_xp, {dy}, {x.buf.name}, {x.offset}, {self._seq_fill(x)}{valid})"

    # -- accumulation into adjoints --------------------------------------------------------------
    def _accumulate(self, instr: Instr, loop: Loop | None) -> str:
        target = instr.target
        value = self._call(instr)
        vrank = result_rank(instr.op, tuple(_rank(a) for a in instr.args), instr.attr)
        trank = len(target.buf.dims)
        value = _sum_trailing(value, vrank - trank)
        b = target.buf
        if b.axis is None:                                   # static or param
            return f"{b.name} += {self._to_target(value, b, instr.mode, instr.summed)}"
        if instr.mode is not Mode.STEP and target.offset == 0:
            return f"{b.name} += {value}"
        if instr.mode is not Mode.STEP:
            fill = target.fill
            valid = f"_valid_{b.axis}" if target.offset > 0 else "None"
            call = f"_unshift_add(_xp, {b.name}, {value}, {target.offset}, {valid})"
            if fill is None:
                return call
            guard = self._fill_guard(target)
            add = f"{fill.name} += {self._to_target('_outside', fill, Mode.STEP, False)}"
            return f"_outside = {call}\n" + (f"if {guard}:\n{INDENT}{add}" if guard else add)
        return self._accumulate_step(instr, value, loop)

    def _fill_guard(self, target: Ref) -> str:
        """A carried start is data: the learned init it replaced gets no gradient from it."""
        var = target.buf.of
        return f"not _carried_{var}" if target.offset < 0 and var in self.carried else ""

    def _write(self, instr: Instr) -> str:
        """The only contribution to an adjoint: written in place, with out= where it can."""
        b = instr.target.buf
        value = self._call(instr)
        vrank = result_rank(instr.op, tuple(_rank(a) for a in instr.args), instr.attr)
        reduced = _sum_trailing(value, vrank - len(b.dims))
        if b.axis is None:
            reduced = self._to_target(reduced, b, instr.mode, instr.summed)
        dest = self._step(b) if instr.mode is Mode.STEP and b.axis else f"{b.name}[...]"
        dest = dest if dest.endswith("]") else dest + "[...]"
        if reduced == value and _writes_out(instr):
            return self._call(instr, out=dest)
        return f"{dest} = {reduced}"

    def _keeps(self, target: Ref, loop: Loop | None) -> str:
        """Whether an adjoint at another step, d[t+k], takes the contribution: inside the
        sequence, and (for a recurrence's own variables) inside the truncation window."""
        s = f"_t{target.offset:+d}"
        keep = f"{s} >= 0" if target.offset < 0 else f"{s} < _T_{target.buf.axis}"
        if loop is not None and loop.truncate and target.buf.of in loop.members:
            keep += f" and (_truncate is None or ({s}) // _truncate == _t // _truncate)"
        return keep

    def _accumulate_step(self, instr: Instr, value: str, loop: Loop | None) -> str:
        """d[t+k] += value inside the sequence (cut at truncation windows); what a read
        outside it took from the fill goes to the fill's adjoint."""
        target, b = instr.target, instr.target.buf
        k = target.offset
        if k == 0:
            return f"{self._step(b)} += {value}"
        s = f"_t{k:+d}"
        inside = f"{s} >= 0" if k < 0 else f"{s} < _T_{b.axis}"
        keep = self._keeps(instr.target, loop)
        mask = f"_valid_{b.axis}[{s}]{_expand(b)}"
        lines = [f"_v = {value}", f"if {keep}:",
                 f"{INDENT}{b.name}[{s}] += " + (f"(_v if _full_{b.axis} else _xp.where({mask}, _v, 0.0))"
                                                 if k > 0 else "_v")]
        fill = target.fill
        if fill is None:
            return "\n".join(lines)
        to_fill = lambda v: f"{fill.name} += {self._to_target(v, fill, Mode.STEP, False)}"
        if k > 0:                           # past each sequence's own end, the read took the fill
            lines += [f"if {inside}:", f"{INDENT}{to_fill(f'_xp.where({mask}, 0.0, _v)')}",
                      "else:", f"{INDENT}{to_fill('_v')}"]
        else:
            guard = self._fill_guard(target)
            lines += [f"if not ({inside})" + (f" and {guard}" if guard else "") + ":", f"{INDENT}{to_fill('_v')}"]
        return "\n".join(lines)

    def _to_target(self, value: str, target: Buf, mode: Mode, summed: bool) -> str:
        """`value` summed down to a static or parameter adjoint: over time for a value made
        for all steps at once, over everything leading for a parameter. A value made once per
        call from parameters (mode PARAM: the slices of stacked weights) has nothing leading."""
        if summed or mode is Mode.PARAM:
            return value
        if target.of in self.batchless:
            return f"_sum_to_param(_xp, {value}, {self.batchless[target.of]})"
        return f"({value}).sum(axis=0)" if mode is Mode.SEQ else value

    # -- backward -----------------------------------------------------------------------------
    def backward(self) -> str:
        p = self.prog
        self.lines = ["def backward(_params, _tape, _truncate=None, _buffers=None):",
                      f'{INDENT}"""The gradient of the mean loss with respect to every parameter '
                      f'(truncate: BPTT window).',
                      f'{INDENT}_buffers: the caller\'s dict of adjoint buffers, reused from call to call '
                      f'(None: fresh ones)."""']
        self.depth = 1
        for n in sorted(set(self._context_names()) | set(p.tape)):          # the planned tape only
            self.put(f"{n} = _tape[{n!r}]")
        returned = {b.name for b in p.params}
        for g in p.grads:
            shape = self._shape(g)
            if g.view is None and g.of in returned:          # handed to the caller: fresh arrays
                make = "zeros" if g.name in p.zeroed else "empty"
                self.put(f"{g.name} = _xp.{make}({shape}, _dtype)")
            elif g.view is None:                                 # internal: the caller's, reused
                self.put(f"{g.name} = _scratch(_xp, _buffers, {g.name!r}, {shape}, _dtype, {g.name in p.zeroed})")
        for g in p.grads:
            if g.view is not None:
                self.put(f"{g.name} = {g.view[0]}[..., {g.view[1]}:{g.view[2]}]")
        self._prologue()
        self._zeros(p.backward)
        self.put(f"{self._adjoint_of(p.loss.name)}[...] = 1.0 / _B")
        self._items(p.backward, backward=True)
        grads = ", ".join(f"{b.name!r}: {self._adjoint_of(b.name)}" for b in p.params)
        self.put(f"return {{{grads}}}")
        return "\n".join(self.lines)


def _tape_dict(names) -> str:
    return "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"


def _empty_step(buf: Buf) -> str:
    """One step of a buffer with nothing in it: zeros, or no class (-1) for class indices."""
    if buf.kind is Kind.FLOAT:
        return f"_xp.zeros({_lead(buf, True)} + {tuple(buf.dims)!r}, dtype=_dtype)"
    return "_xp.full((_B,), -1, dtype=_np.int64)"


def _lead(buf: Buf, one_step: bool) -> str:
    """The leading axes of a buffer (or of one step of it): time, an inner axis, batch."""
    inner = f"_T_{buf.inner}, " if buf.inner else ""
    return f"({inner}_B,)" if one_step else f"(_T_{buf.axis}, {inner}_B)"


def _two_axes(instr: Instr) -> bool:
    """Whether an instruction computes over an inner axis too (attention, at a step)."""
    return bool(instr.out.inner) or any(r.buf.inner for r in instr.refs)


def _carried(prog: Program) -> dict:
    """Recurrent variables whose reads before the start may take a carried state (streams cut
    into windows): name -> the default fill (a learned init parameter) or None (zeros). An
    alignment over two axes (a[t-1, s]) is not carried: the next window attends to other steps."""
    out = {}
    for instr in instructions(prog.forward):
        if instr.mode is not Mode.STEP:
            continue
        for r in instr.refs:
            if r.offset < 0 and r.buf.role is Role.VALUE and r.buf.axis and not r.buf.inner and (
                    r.fill is None or r.fill.role is Role.PARAM):
                out[r.buf.name] = r.fill.name if r.fill is not None else None
    return out


def _gemm(instr: Instr) -> tuple | None:
    """A product with a parameter matrix as a plain GEMM over the batch (one that can write
    out=): (left argument, right argument, whether the right is transposed). W @ x[t] is
    x[t] @ W.T; its adjoint for x is dy @ W. Per step it is matmul; for all steps at once
    _gemm, which makes the (T, B) rows one GEMM."""
    if instr.op is Op.MATMUL:
        key = (*(_rank(r) for r in instr.args), None)
    elif instr.op is Op.MATMUL_VJP:
        key = (instr.attr.get("ra"), instr.attr.get("rb"), instr.attr.get("side"))
    else:
        return None
    form = kernels.PARAM_GEMM.get(key)          # the op table's kernels use the same forms
    matrix = instr.args[form[1]] if form else None
    if isinstance(matrix, Ref) and matrix.buf.role is Role.PARAM and matrix.buf.rank == 2:
        return form
    return None


def _writes_out(instr: Instr) -> bool:
    d = TABLE[instr.op]
    return bool(d.ufunc or d.out or (instr.mode is Mode.STEP and _gemm(instr)))


def _axes(p: Program) -> list:
    return sorted({b.axis for b in p.inputs if b.axis})


def _rank(a) -> int:
    return a.buf.rank if isinstance(a, Ref) else 0


def _number(v) -> str:
    """A constant as a literal (non-finite ones through _np: a bare `inf` would be a name)."""
    v = float(v)
    if not math.isfinite(v):
        return "_np.nan" if math.isnan(v) else ("_np.inf" if v > 0 else "(-_np.inf)")
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _comments(lines: str) -> str:
    """One comment per line of `lines` (a fused instruction carries each member's)."""
    return "\n".join(_comment(line) for line in str(lines).split("\n"))


def _comment(text: str) -> str:
    """A spec line as a comment: through repr, so no line break or control character in it
    can end the comment."""
    return "# " + repr(str(text))[1:-1]


def _expand(b: Buf) -> str:
    return "[:, " + ", ".join(["None"] * b.rank) + "]" if b.rank else ""


def _sum_trailing(value: str, n: int) -> str:
    return value if n <= 0 else f"({value}).sum(axis={tuple(range(-n, 0))!r})"
