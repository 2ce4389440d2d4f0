"""The typed IR: frozen dataclasses for a checked model, `verify` and a text form.

Expressions are immutable trees whose node class is the tag. Each carries its `Type`
(shape in dims, float / onehot / index) and its `axis`: the time axis it varies over,
or None for a static (per-sequence) value. Time reads are explicit: `Read(x, -1)` is
`x[t-1]` on the enclosing axis, `ReadAt(x, from_end=True, offset=0)` is `x[end]`.

A value may vary over a second, `inner` axis (attention): in `e[t, s] = v @ tanh(W @ enc[s] +
U @ dec[t-1])` the sum varies over t and over s, so its `axis` is t and its `inner` is s; at
each step of t it holds one value per step of s. A reduction or softmax over s
(`sum_s a[t, s] * enc[s]`) takes the inner axis away again.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

from ..core.errors import SourcePos
from ..core.ops import TABLE, Op, ShapeError, Type

_POS = dict(default=None, compare=False, repr=False, kw_only=True)


# ---- expressions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Expr:
    type: Type
    axis: str | None
    pos: SourcePos | None = field(**_POS)
    inner: str | None = field(default=None, kw_only=True)    # a second axis it varies over


@dataclass(frozen=True)
class Const(Expr):
    value: float


@dataclass(frozen=True)
class Read(Expr):
    """`var[t + offset]` where t is the axis of the enclosing equation or reduction."""
    var: str
    offset: int


@dataclass(frozen=True)
class ReadAt(Expr):
    """`var[offset]` (from the start) or `var[end + offset]` (offset <= 0): a static value."""
    var: str
    from_end: bool
    offset: int


@dataclass(frozen=True)
class ReadStatic(Expr):
    """A value without time: a parameter, a static input or a static variable."""
    var: str


@dataclass(frozen=True)
class Whole(Expr):
    """A whole sequence, as an argument of a sequence op (ctc). `axis` is its axis."""
    var: str


@dataclass(frozen=True)
class Apply(Expr):
    op: Op
    args: tuple
    attrs: tuple = ()            # ((name, number), ...): the op's constant arguments

    @property
    def attr(self) -> dict:
        return dict(self.attrs)


class Reducer(enum.Enum):
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"


@dataclass(frozen=True)
class Reduce(Expr):
    """`sum_t body` and friends: a static value from a body over axis `over`."""
    fn: Reducer
    over: str
    body: Expr


def children(e: Expr) -> tuple:
    if isinstance(e, Apply):
        return e.args
    if isinstance(e, Reduce):
        return (e.body,)
    return ()


def walk(e: Expr):
    """Every node of an expression, parents before children."""
    yield e
    for c in children(e):
        yield from walk(c)


# ---- model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Noise:
    """How the runtime draws a mask input for each training batch (frontend/noise.py):
    `dropout` keeps each entry with probability 1-p, scaled by 1/(1-p); `steps` zeros n runs of
    up to `width` consecutive steps of each sequence; `band` zeros n runs of up to `width`
    consecutive entries of the last dimension, the same at every step."""
    kind: str                    # dropout, steps or band
    p: float = 0.0               # dropout
    width: int = 0               # steps, band
    n: int = 1                   # steps, band

    def __str__(self) -> str:
        if self.kind == "dropout":
            return f"dropout {self.p:g}"
        return f"{self.n} run{'s' * (self.n != 1)} of up to {self.width} {'steps' if self.kind == 'steps' else 'entries'}"


@dataclass(frozen=True)
class Input:
    name: str
    type: Type
    axis: str | None
    pos: SourcePos | None = field(**_POS)
    noise: Noise | None = field(default=None, kw_only=True)    # a mask the runtime draws (frontend/noise.py)


@dataclass(frozen=True)
class Init:
    """A parameter initialiser: zeros, ones, constant(c), normal(std), normal(mean, std),
    uniform(a), uniform(lo, hi), orthogonal, xavier, auto."""
    fn: str
    args: tuple = ()

    def __str__(self) -> str:
        return f"{self.fn}({', '.join(f'{a:g}' for a in self.args)})" if self.args else self.fn


@dataclass(frozen=True)
class Param:
    name: str
    type: Type
    init: Init
    pos: SourcePos | None = field(**_POS)


@dataclass(frozen=True)
class Equation:
    name: str
    type: Type
    axis: str | None
    expr: Expr
    text: str = field(default="", compare=False)       # the spec line, for comments and errors
    pos: SourcePos | None = field(**_POS)
    inner: str | None = field(default=None, kw_only=True)    # e[t, s] = ...: also over s


@dataclass(frozen=True)
class State:
    """What `var[t-k]` reads before the first step: zeros, or the value of `source`
    (a learned parameter or a static equation, both named `<var>_init`)."""
    var: str
    source: str | None
    learned: bool = False
    pos: SourcePos | None = field(**_POS)


@dataclass(frozen=True)
class Generate:
    feed: tuple                  # ((input name, output variable), ...)
    max_len: int = 50
    start: str | None = None
    stop: str | None = None
    temperature: float = 1.0      # the default of `rnndsl sample`; 0 is greedy
    pos: SourcePos | None = field(**_POS)


@dataclass(frozen=True)
class Model:
    name: str
    doc: str
    path: str
    dims: tuple                  # ((name, Dim), ...)
    axes: tuple                  # axis names, in order of first declaration
    inputs: tuple                # Input
    params: tuple                # Param
    equations: tuple             # Equation, in spec order (state inits appended)
    states: tuple                # State
    loss: Expr
    outputs: tuple = ()
    generate: Generate | None = None
    train: tuple = ()            # ((key, value), ...)
    masks: tuple = ()            # Input: dropout and masking masks, drawn by the runtime (ones when absent)
    export: tuple = ()           # ((target, ((name, params, zeros), ...)), ...): export.py

    @property
    def all_inputs(self) -> tuple:
        """The data inputs, then the masks: everything a forward pass reads."""
        return self.inputs + self.masks

    def lookup(self, name: str):
        """The Input, Param or Equation called `name`, or None."""
        return self._by_name.get(name)

    def axis_of(self, name: str) -> str | None:
        item = self.lookup(name)
        return getattr(item, "axis", None)

    def inner_of(self, name: str) -> str | None:
        """The second axis of a variable over two axes (`e[t, s]`), else None."""
        return getattr(self.lookup(name), "inner", None)

    def state(self, var: str) -> State | None:
        return self._states.get(var)

    @cached_property
    def _by_name(self) -> dict:
        """name -> its first Input, Param or Equation: a lookup per read must not scan them
        all (that made unrolling and checking quadratic in the spec's size)."""
        index: dict = {}
        for item in self.all_inputs + self.params + self.equations:
            index.setdefault(item.name, item)
        return index

    @cached_property
    def _states(self) -> dict:
        index: dict = {}
        for s in self.states:
            index.setdefault(s.var, s)
        return index

    @property
    def dim(self) -> dict:
        return dict(self.dims)

    def param_count(self) -> int:
        return sum(_size(p.type) for p in self.params)


def _size(t: Type) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


# ---- verify --------------------------------------------------------------------------------

class IRError(Exception):
    """An internal invariant broke: a compiler bug, never a user error."""


def verify(model: Model) -> Model:
    """Check the IR's invariants: names resolve, axes agree, every type follows its op's rule."""
    names = [x.name for x in model.all_inputs + model.params + model.equations]
    if len(names) != len(set(names)):
        raise IRError(f"duplicate names in {names}")
    for eq in model.equations:
        _verify_expr(model, eq.expr, eq.axis, eq.inner)
        if eq.expr.axis not in (None, eq.axis) or eq.expr.inner != eq.inner:
            raise IRError(f"{eq.name}: expression on axes {eq.expr.axis}, {eq.expr.inner}, equation on "
                          f"{eq.axis}, {eq.inner}")
    _verify_expr(model, model.loss, None, None)
    for s in model.states:
        if s.source and model.lookup(s.source) is None:
            raise IRError(f"state {s.var}: no {s.source}")
    return model


def _verify_expr(model: Model, e: Expr, axis: str | None, inner: str | None) -> None:
    if e.inner is not None and (e.inner != inner or e.axis != axis):
        raise IRError(f"a value over {e.axis} and {e.inner} where {axis}, {inner} run")
    if isinstance(e, (Read, ReadAt, ReadStatic, Whole)):
        target = model.lookup(e.var)
        if target is None:
            raise IRError(f"read of unknown {e.var}")
        if isinstance(e, Read) and getattr(target, "axis", None) not in (axis, inner):
            raise IRError(f"{e.var} read on axis {axis} but lives on {getattr(target, 'axis', None)}")
        if isinstance(e, Read) and getattr(target, "inner", None) != e.inner:
            raise IRError(f"{e.var} is over {getattr(target, 'inner', None)} too, read over {e.inner}")
    elif isinstance(e, Apply):
        for a in e.args:
            _verify_expr(model, a, axis, inner)
        d = TABLE[e.op]
        if d.arity >= 0 and len(e.args) != d.arity:
            raise IRError(f"{e.op} takes {d.arity} arguments")
        try:
            expected = d.shape([a.type for a in e.args], {**dict(d.attrs), **e.attr})
        except ShapeError as exc:
            raise IRError(f"{e.op}: {exc.message}") from None
        if expected != e.type:
            raise IRError(f"{e.op}: type {e.type} but the rule gives {expected}")
    elif isinstance(e, Reduce) and e.body.inner == e.over:        # over the inner axis: t still runs
        _verify_expr(model, e.body, axis, e.over)
    elif isinstance(e, Reduce):
        _verify_expr(model, e.body, e.over, None)


# ---- text form -----------------------------------------------------------------------------

_PREC = {Op.ADD: 1, Op.SUB: 1, Op.MUL: 2, Op.DIV: 2, Op.MATMUL: 2}


def show(e: Expr, axis: str = "t") -> str:
    """An expression in spec syntax (fully parenthesised where precedence needs it)."""
    if isinstance(e, Const):
        return f"{e.value:g}"
    if isinstance(e, Read) and e.inner:
        return f"{e.var}[{_offset(e.axis, e.offset)}, {e.inner}]"
    if isinstance(e, Read):
        return f"{e.var}[{_offset(e.axis or axis, e.offset)}]"
    if isinstance(e, ReadAt):
        return f"{e.var}[{_offset('end', e.offset) if e.from_end else e.offset}]"
    if isinstance(e, (ReadStatic, Whole)):
        return e.var
    if isinstance(e, Reduce):
        return f"{e.fn.value}_{e.over} {show(e.body, e.over)}"
    if e.op in _PREC:
        lhs, rhs = (_wrap(a, axis, _PREC[e.op] + (i == 1)) for i, a in enumerate(e.args))
        return f"{lhs} {e.op.value} {rhs}"
    if e.op is Op.NEG:
        return f"-{_wrap(e.args[0], axis, 3)}"
    if e.op is Op.SOFTMAX_OVER:
        return f"softmax_{e.args[0].inner or e.args[0].axis}({show(e.args[0], axis)})"
    attrs = e.attr
    args = [show(a, axis) for a in e.args]
    args += [f"{attrs[k]:g}" if default is None else f"{k}={attrs[k]:g}"
             for k, default in TABLE[e.op].attrs if k in attrs and attrs[k] != default]
    return f"{e.op.value}({', '.join(args)})"


def _wrap(e: Expr, axis: str, prec: int) -> str:
    text = show(e, axis)
    inner = _PREC.get(e.op, 9) if isinstance(e, Apply) else (0 if isinstance(e, Reduce) else 9)
    return f"({text})" if inner < prec else text


def _offset(axis: str, k: int) -> str:
    return axis if k == 0 else f"{axis}{k:+d}"


def pretty(model: Model) -> str:
    """The whole model as text: `rnndsl compile --dump ir`."""
    out = [f"model {model.name}  # {model.path}",
           "dims " + " ".join(f"{n}={d.value}" for n, d in model.dims)]
    out += [f"input {i.name}: {i.type}" + (f" over {i.axis}" if i.axis else "") for i in model.inputs]
    out += [f"mask {i.name}: {i.type}" + (f" over {i.axis}" if i.axis else " (the same at every step)")
            + f", {i.noise}" for i in model.masks]
    out += [f"param {p.name}: {p.type} = {p.init}" for p in model.params]
    out += [f"state {s.var}: init {'learned ' if s.learned else ''}{s.source or 'zeros'}"
            for s in model.states]
    for eq in model.equations:
        lhs = f"{eq.name}[{eq.axis}, {eq.inner}]" if eq.inner else f"{eq.name}[{eq.axis}]" if eq.axis else eq.name
        out.append(f"{lhs}: {eq.type} = {show(eq.expr, eq.axis or 't')}")
    out.append(f"loss = {show(model.loss)}")
    if model.outputs:
        out.append("outputs " + ", ".join(model.outputs))
    return "\n".join(out)
