"""Expression AST -> typed IR expressions: names, time indices, axes, shapes.

`Typer.expr(node, axis)` types one expression in the context of a time axis (None for a
static expression). Reads of variables whose type is not known yet raise `Pending`
(first pass) or, in guessing mode, give a `HOLE` that shape rules propagate; see
`check.infer_types` for the fixpoint that uses both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import ir, parse
from ..core.errors import SourcePos, SpecError, did_you_mean
from ..core.ops import BY_SPELLING, SCALAR, TABLE, Dim, Kind, Op, ShapeError, Type, floats

MAX_SIZE = 1 << 24            # declare.MAX_DIM: no axis of any value is longer
MAX_OFFSET = 10_000
MAX_WINDOW = 1_000
HOLE = Type(Kind.FLOAT, (Dim(-1, "?"),))       # a type still being inferred
RESERVED = {"end"}


class Pending(Exception):
    """A read of a variable whose type is not known yet."""


class Poisoned(Exception):
    """A read of a variable whose own equation had an error: stay quiet, it was reported."""


@dataclass(frozen=True)
class Entity:
    """What a name means: its type, its axis (None: static) and what it is."""
    name: str
    role: str                  # dim, input, param, var
    type: Type | None          # None: not inferred yet
    axis: str | None
    pos: SourcePos | None = None
    inner: str | None = None   # a variable over two axes, e[t, s]: its second axis


def snippet(pos: SourcePos) -> str:
    """The spec text under a span (its first line if it spans several)."""
    line = pos.source.line(pos.line)
    end = pos.end_col - 1 if pos.end_line == pos.line else len(line)
    return line[pos.col - 1:end].strip() or line.strip()


def head(pos: SourcePos, width: int) -> SourcePos:
    """The first `width` characters of a span, such as the name of a call."""
    return SourcePos(pos.source, pos.line, pos.col, pos.line, pos.col + width)


def linear_index(node, axes: set, consts) -> tuple:
    """A time index as (symbol, offset): `t-1` -> ('t', -1), `end` -> ('end', 0), `3` -> (None, 3).
    `consts(name)` gives a dim's value. Raises SpecError for anything not of that form."""
    if isinstance(node, parse.Num):
        if not math.isfinite(node.value) or node.value != int(node.value):
            raise SpecError.at(node.pos, f"a time offset must be a whole number, got {node.text}")
        return None, int(node.value)
    if isinstance(node, parse.Name):
        if node.name in axes or node.name == "end":
            return node.name, 0
        return None, consts(node)
    if isinstance(node, parse.Neg):
        sym, k = linear_index(node.operand, axes, consts)
        if sym:
            raise SpecError.at(node.pos, "a time index counts forward: write t-1, not -t+...")
        return None, -k
    if isinstance(node, parse.BinOp) and node.op in "+-*/":
        (sa, a), (sb, b) = linear_index(node.lhs, axes, consts), linear_index(node.rhs, axes, consts)
        if node.op == "+" and not (sa and sb):
            return sa or sb, a + b
        if node.op == "-" and not sb:
            return sa, a - b
        if node.op in "*/" and not (sa or sb):
            if node.op == "/" and (b == 0 or a % b):
                raise SpecError.at(node.pos, f"{snippet(node.pos)} is not a whole number")
            return None, a * b if node.op == "*" else a // b
    raise SpecError.at(node.pos, f"cannot read the time index {snippet(node.pos)}",
                       "a time index is t, t-k, t+k, end, end-k or a step number such as 0")


class Typer:
    def __init__(self, names: dict, axes: tuple, guess: bool = False, inner: str | None = None):
        self.names = names            # name -> Entity
        self.axes = axes
        self.guess = guess
        self.inner = inner            # the second axis running besides the equation's (attention)

    # -- dispatch --------------------------------------------------------------------------
    def expr(self, node, axis: str | None) -> ir.Expr:
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node, axis)

    def exprs(self, nodes, axis: str | None) -> list:
        """Type sibling expressions. A poisoned one does not hide a mistake in the others:
        they are independent, so their errors are new."""
        out, poisoned = [], None
        for n in nodes:
            try:
                out.append(self.expr(n, axis))
            except Poisoned as exc:
                poisoned = exc
        if poisoned:
            raise poisoned
        return out

    def _num(self, node: parse.Num, axis) -> ir.Expr:
        if not math.isfinite(node.value):
            raise SpecError.at(node.pos, f"the number {node.text} is too large")
        return ir.Const(SCALAR, None, node.value, pos=node.pos)

    def _neg(self, node: parse.Neg, axis) -> ir.Expr:
        x = self.expr(node.operand, axis)
        if isinstance(x, ir.Const):
            return ir.Const(SCALAR, None, -x.value, pos=node.pos)
        return self.apply(Op.NEG, [x], (), node)

    def _binop(self, node: parse.BinOp, axis) -> ir.Expr:
        lhs, rhs = self.exprs([node.lhs, node.rhs], axis)
        op = {"+": Op.ADD, "-": Op.SUB, "*": Op.MUL, "/": Op.DIV, "@": Op.MATMUL}[node.op]
        if op is Op.DIV and isinstance(rhs, ir.Const) and rhs.value == 0:
            raise SpecError.at(node.rhs.pos, f"division by zero in {snippet(node.pos)}")
        if isinstance(lhs, ir.Const) and isinstance(rhs, ir.Const) and op is not Op.MATMUL:
            return self._fold(op, lhs, rhs, node)
        return self.apply(op, [lhs, rhs], (), node)

    def _fold(self, op: Op, lhs: ir.Const, rhs: ir.Const, node) -> ir.Const:
        """Constant arithmetic, done here so that `1 - 0.5` is one number in the IR."""
        value = float(TABLE[op].forward(np, lhs.value, rhs.value))
        if not math.isfinite(value):
            raise SpecError.at(node.pos, f"{snippet(node.pos)} is too large a number")
        return ir.Const(SCALAR, None, value, pos=node.pos)

    # -- names ------------------------------------------------------------------------------
    def entity(self, name: str, pos: SourcePos) -> Entity:
        ent = self.names.get(name)
        if ent is None:
            if name in self.axes:
                raise SpecError.at(pos, f"{name} is a time axis, not a value",
                                   f"read a sequence at a step of {name}, such as x[{name}]")
            if name in BY_SPELLING:
                raise SpecError.at(pos, f"{name} is an op; call it as {name}(...)")
            candidates = [n for n, e in self.names.items() if e.role != "dim"] + list(BY_SPELLING)
            raise SpecError.at(pos, f"unknown name '{name}'",
                               did_you_mean(name, candidates)
                               or "declare it under params: or inputs:, or define it by an equation")
        if ent.type is ERROR:
            raise Poisoned(name)
        return ent

    def _typed(self, ent: Entity) -> Type:
        if ent.type is None:
            if not self.guess:
                raise Pending(ent.name)
            return HOLE
        if ent.type is ERROR:
            raise Poisoned(ent.name)
        return ent.type

    def _name(self, node: parse.Name, axis) -> ir.Expr:
        ent = self.entity(node.name, node.pos)
        if ent.role == "dim":
            return ir.Const(SCALAR, None, float(self._typed(ent).dims[0]), pos=node.pos)
        if ent.axis is not None:
            a = ent.axis
            raise SpecError.at(node.pos, f"{node.name} is a sequence over {a}; read it at a step",
                               f"write {node.name}[{a}] for the current step, {node.name}[end] for "
                               f"the last one, or mean_{a} {node.name}[{a}] for a summary")
        return ir.ReadStatic(self._typed(ent), None, node.name, pos=node.pos)

    def _indexed(self, node: parse.Indexed, axis) -> ir.Expr:
        ent = self.entity(node.name, node.pos)
        if ent.axis is None:
            what = {"param": "a parameter", "dim": "a dim"}.get(ent.role, "a static value")
            raise SpecError.at(node.pos, f"{node.name} is {what}; it has no time index",
                               f"write {node.name} without [...]")
        if node.inner is not None or ent.inner is not None:
            return self._read_two(node, ent, axis)
        lo = self._index(node.lo, ent, axis)
        if node.hi is None:
            return self._read(node, ent, lo, axis)
        hi = self._index(node.hi, ent, axis)
        if lo[0] != ent.axis or hi[0] != ent.axis:
            raise SpecError.at(node.pos, "a window reads a range of steps around the current one",
                               f"write {node.name}[{ent.axis}-k:{ent.axis}+k]")
        if not 0 <= hi[1] - lo[1] < MAX_WINDOW:
            raise SpecError.at(node.pos, f"window {snippet(node.pos)} is empty or wider than "
                               f"{MAX_WINDOW} steps", "write the earlier step first: x[t-C:t+C]")
        reads = [self._read(node, ent, (ent.axis, k), axis) for k in range(lo[1], hi[1] + 1)]
        if self.guess and reads[0].type is HOLE:
            return reads[0]
        if reads[0].type.rank == 0:
            raise SpecError.at(node.pos, f"a window concatenates vectors, but {node.name} is a scalar")
        return self.apply(Op.CONCAT, reads, (), node) if len(reads) > 1 else reads[0]

    def _read_two(self, node: parse.Indexed, ent: Entity, axis) -> ir.Expr:
        """`e[t-k, s]`: a variable over two axes, read where both run (an offset on the first only)."""
        if ent.inner is None or node.inner is None or node.hi is not None:
            form = f"{node.name}[{ent.axis}, {ent.inner}]" if ent.inner else f"{node.name}[{ent.axis}]"
            raise SpecError.at(node.pos, f"{node.name} runs over {' and '.join(a for a in (ent.axis, ent.inner) if a)}; "
                               f"read it as {form}", "windows and fixed steps of a variable over two axes do not exist")
        sym, k = self._index(node.lo, ent, axis)
        inner, offset = linear_index(node.inner, set(self.axes), self._dim_value)
        if sym != ent.axis or inner != ent.inner or offset:
            raise SpecError.at(node.pos, f"{node.name} is read as {node.name}[{ent.axis}-k, {ent.inner}]",
                               f"the first index may step back or ahead, the second is {ent.inner} itself")
        if (axis, self.inner) != (ent.axis, ent.inner):
            raise SpecError.at(node.pos, f"{snippet(node.pos)} is read where {ent.axis} and {ent.inner} do not both run",
                               f"read it in an equation over {ent.axis} inside a reduction over {ent.inner} "
                               f"(sum_{ent.inner} {node.name}[{ent.axis}, {ent.inner}] * v[{ent.inner}]) "
                               f"or in another variable over [{ent.axis}, {ent.inner}]")
        return ir.Read(self._typed(ent), axis, ent.name, k, pos=node.pos, inner=ent.inner)

    def _index(self, index_node, ent: Entity, axis) -> tuple:
        sym, k = linear_index(index_node, set(self.axes), self._dim_value)
        if sym in self.axes and sym != ent.axis:
            raise SpecError.at(index_node.pos, f"{ent.name} runs over {ent.axis}, not {sym}",
                               f"write {ent.name}[{ent.axis}...]")
        if abs(k) > MAX_OFFSET:
            raise SpecError.at(index_node.pos, f"time offset {k} is larger than {MAX_OFFSET}")
        return sym, k

    def _dim_value(self, node: parse.Name) -> int:
        ent = self.entity(node.name, node.pos)
        if ent.role != "dim":
            raise SpecError.at(node.pos, f"{node.name} is not a dim; a time index is t, t-k, end or a number")
        return self._typed(ent).dims[0]

    def _read(self, node, ent: Entity, index: tuple, axis) -> ir.Expr:
        sym, k = index
        if sym == "end" or sym is None:
            if (sym == "end" and k > 0) or (sym is None and k < 0):
                raise SpecError.at(node.pos, f"{snippet(node.pos)} lies outside the sequence",
                                   "count from the start with 0, 1, ... or back from the end with end, end-1, ...")
            return ir.ReadAt(self._typed(ent), None, ent.name, sym == "end", k, pos=node.pos)
        if axis is None:
            raise SpecError.at(node.pos, f"{snippet(node.pos)} reads one step, but this value is static",
                               f"reduce over {sym} (mean_{sym} {node.name}[{sym}], sum_{sym} ...) "
                               f"or read one step: {node.name}[end]")
        if axis != sym and sym == self.inner:         # enc[s] inside attention over s
            if k:
                raise SpecError.at(node.pos, f"{snippet(node.pos)}: inside a value over {axis} and {sym}, "
                                   f"{node.name} is read at {sym} itself", f"write {node.name}[{sym}]")
            return ir.Read(self._typed(ent), sym, ent.name, 0, pos=node.pos)
        if axis != sym:
            raise SpecError.at(node.pos, f"{node.name} is a sequence over {sym}; it cannot be read at a step of {axis}",
                               f"a variable on another axis is reached through a static value "
                               f"({node.name}[end] or mean_{sym} {node.name}[{sym}]) or by attention, inside a "
                               f"reduction over {sym} or a variable over [{axis}, {sym}]: "
                               f"sum_{sym} softmax_{sym}(q[{axis}] @ {node.name}[{sym}]) * {node.name}[{sym}]")
        return ir.Read(self._typed(ent), axis, ent.name, k, pos=node.pos)

    # -- reductions and calls --------------------------------------------------------------
    def _reduce(self, node: parse.Reduce, axis) -> ir.Expr:
        if node.axis not in self.axes:
            raise SpecError.at(head(node.pos, len(node.fn) + 1 + len(node.axis)),
                               f"{node.fn}_{node.axis}: there is no axis {node.axis}",
                               f"axes come from inputs' axis: entries; this spec has "
                               f"{', '.join(self.axes) or 'none'}; names beginning sum_, mean_, max_ "
                               f"or min_ are reductions")
        if node.axis == self.inner:
            raise SpecError.at(node.pos, f"{node.fn}_{node.axis}: {node.axis} already runs here",
                               f"a variable over two axes cannot reduce over its own {node.axis}; reduce where "
                               f"it is read: ctx[t] = sum_{node.axis} a[t, {node.axis}] * v[{node.axis}]")
        inner = axis is not None and node.axis != axis and self.inner is None
        body = self._body(node.body, axis, node.axis) if inner else self.expr(node.body, node.axis)
        if node.axis not in (body.axis, body.inner):
            raise SpecError.at(node.pos, f"the body of {node.fn}_{node.axis} does not depend on {node.axis}",
                               f"read a sequence at {node.axis}, such as x[{node.axis}]")
        if body.type.kind is Kind.INDEX:
            raise SpecError.at(node.pos, f"{node.fn}_{node.axis} of class indices is meaningless")
        keeps = axis if body.inner == node.axis else None        # over the inner axis: t still runs
        return ir.Reduce(floats(*body.type.shape), keeps, ir.Reducer(node.fn), node.axis, body, pos=node.pos)

    def _body(self, node, axis: str, inner: str) -> ir.Expr:
        """Type `node` where `inner` runs besides `axis` (the body of sum_s inside an equation over t)."""
        saved, self.inner = self.inner, inner
        try:
            return self.expr(node, axis)
        finally:
            self.inner = saved

    def _call(self, node: parse.Call, axis) -> ir.Expr:
        op = BY_SPELLING.get(node.fn)
        if op is None and node.fn.startswith("softmax_") and node.fn[8:] in self.axes:
            return self._softmax_over(node, axis, node.fn[8:])
        if op is None:
            raise self._unknown_function(node)
        if op is Op.SAMPLE:
            raise SpecError.at(node.pos, "sample() is only used while generating",
                               "the generate: section's feed: says which output is sampled into which input")
        if op is Op.CTC:
            args = [self._whole(a) for a in node.args]
        else:
            args = self.exprs(node.args, axis)
        if op in (Op.MIN, Op.MAX) and len(args) == 1 and not node.kwargs:    # max(x): of x's entries
            op = Op.MAX_OF if op is Op.MAX else Op.MIN_OF
        d = TABLE[op]
        if op in (Op.MIN, Op.MAX) and len(args) == 2 and isinstance(args[0], ir.Const):
            args = args[::-1]
        n = len(args) if d.arity < 0 else d.arity
        if not n <= len(args) <= n + len(d.attrs) or (op is Op.CONCAT and not args):
            raise SpecError.at(node.pos, f"{node.fn} takes {_signature(node.fn, d)}, got {len(args)} "
                               f"argument{'s' * (len(args) != 1)}")
        attrs = self._attrs(node, d, args[n:])
        if op is Op.SLICE:           # positions: whole numbers (the shape rule says so otherwise)
            attrs = tuple((k, int(v) if v == int(v) else v) for k, v in attrs)
        return self.apply(op, args[:n], attrs, node)

    def _softmax_over(self, node: parse.Call, axis, over: str) -> ir.Expr:
        """`softmax_s(e[t, s])`: a softmax over the steps of s, at each step of t and entry; in an
        equation over s itself, `softmax_s(v @ h[s])` normalises over the whole sequence."""
        if len(node.args) != 1 or node.kwargs:
            raise SpecError.at(node.pos, f"{node.fn} takes one argument: {node.fn}(e[t, {over}])")
        if over not in (self.inner, axis):
            raise SpecError.at(head(node.pos, len(node.fn)), f"{node.fn} normalises over the steps of {over}, "
                               "which does not run here",
                               f"use it in an equation over {over} (a[{over}] = {node.fn}(v @ h[{over}])), in a "
                               f"variable over two axes (a[t, {over}] = {node.fn}(e[t, {over}])) or inside a "
                               f"reduction: sum_{over} {node.fn}(e[t, {over}]) * v[{over}]")
        x = self.expr(node.args[0], axis)
        varies = x.inner == over if over == self.inner else (x.axis == over and x.inner is None)
        if not self.guess and not varies or x.type.kind is Kind.INDEX:
            what = f"{axis} and {over}" if over == self.inner else over
            raise SpecError.at(node.pos, f"the argument of {node.fn} does not vary over {what}",
                               f"a softmax over {over} normalises scores that depend on its steps, such as "
                               + (f"q[{axis}] @ k[{over}]" if over == self.inner else f"v @ h[{over}]"))
        return self.apply(Op.SOFTMAX_OVER, [x], (), node)
    def _splitpart(self, node: parse.SplitPart, axis) -> ir.Expr:
        """Part `part` of `parts` equal parts of a vector: one target of `i, f = split(z[t], 2)`."""
        x = self.expr(node.of, axis)
        if self.guess and x.type is HOLE:
            return x
        t = x.type
        if t.kind is Kind.INDEX or t.rank != 1:
            raise SpecError.at(node.of.pos, f"split takes a vector, got {t}",
                               "split divides a vector's entries: i, f = split(z[t], 2)")
        size, n = t.shape[0], node.parts
        if size.value % n:
            raise SpecError.at(node.pos, f"split: {size} entries do not divide into {n} equal parts",
                               f"the vector's size must be a multiple of {n}, the number of names on the left")
        width = size.value // n
        prefix = f"{n}*"
        name = size.name[len(prefix):] if size.name.startswith(prefix) else ""
        bounds = (("start", node.part * width), ("stop", (node.part + 1) * width))
        return ir.Apply(floats(Dim(width, name)), x.axis, Op.SLICE, (x,), bounds, pos=node.pos)

    def _unknown_function(self, node: parse.Call) -> SpecError:
        pos = head(node.pos, len(node.fn))
        ent = self.names.get(node.fn)
        if node.fn == "split" and ent is None:
            return SpecError.at(pos, "split gives several values: name them on the left of the equation",
                                "for example i, f, o, g = split(z[t], 4)")
        if ent is not None:
            role = {"var": "a variable", "input": "an input"}.get(ent.role, f"a {ent.role}")
            hint = (f"read a step with square brackets: {node.fn}[{ent.axis}-1]" if ent.axis
                    else f"multiply with @ or *: {node.fn} @ x")
            return SpecError.at(pos, f"{node.fn} is {role}, not a function", hint)
        return SpecError.at(pos, f"unknown function '{node.fn}'",
                            did_you_mean(node.fn, BY_SPELLING) or "ops: " + ", ".join(sorted(BY_SPELLING)))

    def _attrs(self, node: parse.Call, d, extra: list) -> tuple:
        """The op's constant arguments, given after its arrays or by keyword."""
        names = [name for name, _ in d.attrs]
        given = dict(zip(names, extra))
        for key, value_node, key_pos in node.kwargs:
            if key not in names:
                raise SpecError.at(key_pos, f"{node.fn} has no argument '{key}'",
                                   f"{node.fn} takes {_signature(node.fn, d)}")
            if key in given:
                raise SpecError.at(key_pos, f"{node.fn}: {key} is given twice")
            given[key] = self.expr(value_node, None)
        attrs = {}
        for name, default in d.attrs:
            value = given.get(name)
            if value is None:
                if default is None:
                    raise SpecError.at(node.pos, f"{node.fn} needs {name}: {_signature(node.fn, d)}")
                attrs[name] = default
            elif not isinstance(value, ir.Const):
                raise SpecError.at(value.pos, f"{node.fn}: {name} must be a constant number",
                                   "max over time is max_t; an elementwise max takes one constant"
                                   if d.op in (Op.MIN, Op.MAX) else "")
            elif isinstance(default, int) and (value.value != int(value.value) or abs(value.value) > MAX_SIZE):
                raise SpecError.at(value.pos, f"{node.fn}: {name} must be a whole number"
                                   + (f" of at most {MAX_SIZE:,}" if value.value == int(value.value) else ""))
            else:
                attrs[name] = type(default)(value.value) if isinstance(default, int) else value.value
        return tuple(sorted(attrs.items()))

    def _whole(self, node) -> ir.Expr:
        """An argument of a sequence op: a sequence named without an index."""
        if not isinstance(node, parse.Name):
            raise SpecError.at(node.pos, "ctc takes whole sequences by name: ctc(y, labels, blank=0)",
                               "define y[t] by an equation and pass y, not y[t]")
        ent = self.entity(node.name, node.pos)
        if ent.axis is None:
            raise SpecError.at(node.pos, f"{node.name} is not a sequence; ctc takes sequences")
        return ir.Whole(self._typed(ent), ent.axis, node.name, pos=node.pos)

    def apply(self, op: Op, args: list, attrs: tuple, node) -> ir.Expr:
        types = [a.type for a in args]
        axis, inner = (None, None) if op is Op.CTC else self._join_axes(args, node)
        if self.guess and HOLE in types:
            return ir.Apply(_guess(op, types), axis, op, tuple(args), attrs, pos=node.pos, inner=inner)
        d = TABLE[op]
        try:
            result = d.shape(types, dict(attrs))
        except ShapeError as exc:
            raise SpecError.at(node.pos, exc.message.replace("{expr}", snippet(node.pos)), exc.hint) from None
        except ZeroDivisionError:          # a window rule given a stride or size of 0
            raise SpecError.at(node.pos, f"{op.value}: a stride or size of 0 is not allowed") from None
        if any(n > MAX_SIZE for n in result.dims):
            raise SpecError.at(node.pos, f"{snippet(node.pos)} is {result}, larger than {MAX_SIZE:,} "
                               "in one axis", "check the sizes, the window width or the padding")
        return ir.Apply(result, axis, op, tuple(args), attrs, pos=node.pos, inner=inner)

    def _join_axes(self, args: list, node) -> tuple:
        """(axis, inner) of a value made from `args`: over both running axes if its arguments
        together vary over both (attention), else over the one they share."""
        axes = sorted({x for a in args for x in (a.axis, a.inner) if x})
        if len(axes) == 2 and self.inner in axes:
            return next(a for a in axes if a != self.inner), self.inner
        if len(axes) > 1:
            raise SpecError.at(node.pos, f"{snippet(node.pos)} mixes values over axes {' and '.join(axes)}",
                               "a variable on another axis is reached through a static value, "
                               f"such as enc[end] or mean_{axes[0]} enc[{axes[0]}], or by attention: "
                               f"sum_{axes[0]} a[{axes[1]}, {axes[0]}] * enc[{axes[0]}]")
        return (axes[0] if axes else None), None


ERROR = Type(Kind.FLOAT, (Dim(-2, "!"),))       # the type of a variable whose equation failed


def _signature(fn: str, d) -> str:
    arrays = {1: "x", 2: "a, b"}.get(d.arity, "a, b, ...")
    attrs = [name if default is None else f"{name}={default}" for name, default in d.attrs]
    return f"{fn}({', '.join([arrays] + attrs)})"


def _guess(op: Op, types: list) -> Type:
    """A best guess at a result type while some argument is still being inferred."""
    known = [t for t in types if t is not HOLE]
    if op is Op.MATMUL and types[0] is not HOLE and types[0].rank == 2:
        return floats(types[0].shape[0])
    if op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV):
        vectors = [t for t in known if t.rank > 0]
        return Type(Kind.FLOAT, vectors[0].shape) if vectors else HOLE
    return HOLE
