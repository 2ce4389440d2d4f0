"""Scalar templates: elementwise formulas written once, rendered for every target.

Input: an expression tree over scalar primitives (`dy * (1 - y * y)`, built with Python's
operators and the functions below) wrapped in a `Template` naming its array arguments and
constant attributes. Output: a C99/CUDA expression (`c_expr`) and a Python-scalar expression
for numba (`py_expr`, `py_source`); rnndsl/core/scalar_numpy.py renders the NumPy function
over arrays that writes into `out=`. Each primitive is written once per target in `PRIMS`; a
target may also lower a primitive to a composition of others (sigmoid in NumPy). Imports only
NumPy and the standard library.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

import numpy as np


# ---- the expression tree ---------------------------------------------------------------------

class Expr:
    """A scalar expression. Operators build trees; `and` cannot be overloaded, so `&` is the
    logical and, and using an expression as a Python truth value is an error."""

    def __add__(self, o): return Call("add", (self, _wrap(o)))
    def __radd__(self, o): return Call("add", (_wrap(o), self))
    def __sub__(self, o): return Call("sub", (self, _wrap(o)))
    def __rsub__(self, o): return Call("sub", (_wrap(o), self))
    def __mul__(self, o): return Call("mul", (self, _wrap(o)))
    def __rmul__(self, o): return Call("mul", (_wrap(o), self))
    def __truediv__(self, o): return Call("div", (self, _wrap(o)))
    def __rtruediv__(self, o): return Call("div", (_wrap(o), self))
    def __neg__(self): return Call("neg", (self,))
    def __abs__(self): return Call("abs", (self,))
    def __gt__(self, o): return Call("gt", (self, _wrap(o)))
    def __ge__(self, o): return Call("ge", (self, _wrap(o)))
    def __lt__(self, o): return Call("lt", (self, _wrap(o)))
    def __le__(self, o): return Call("le", (self, _wrap(o)))
    def __and__(self, o): return Call("and", (self, _wrap(o)))
    def __rand__(self, o): return Call("and", (_wrap(o), self))

    def __bool__(self):
        raise TypeError("a scalar expression has no truth value: write & for a logical and, "
                        "where(c, a, b) for a choice")

    def __str__(self) -> str:
        return _show(self)

    @property
    def kind(self) -> str:
        """"f" for a number, "b" for a boolean."""
        return "f"


@dataclass(frozen=True, eq=True)
class Arg(Expr):
    """An array argument of the template."""
    name: str


@dataclass(frozen=True, eq=True)
class Const(Expr):
    value: float


@dataclass(frozen=True, eq=True)
class Attr(Expr):
    """A constant attribute of the op (clip's lo and hi), a scalar at run time."""
    name: str


@dataclass(frozen=True, eq=True)
class Call(Expr):
    prim: str
    args: tuple

    def __post_init__(self):
        p = PRIMS.get(self.prim)
        if p is None:
            raise ValueError(f"no scalar primitive {self.prim!r}")
        kinds = "".join(a.kind for a in self.args)
        if len(kinds) != len(p.takes) or (kinds != p.takes and not _mask(self.prim, kinds)):
            raise TypeError(f"{self.prim} takes ({', '.join(_KIND_NAMES[k] for k in p.takes)}), "
                            f"got ({', '.join(_KIND_NAMES[k] for k in kinds)})")

    @property
    def kind(self) -> str:
        return PRIMS[self.prim].gives


_KIND_NAMES = {"f": "number", "b": "boolean"}


def _mask(prim: str, kinds: str) -> bool:
    """A number times a comparison (`dy * (x > 0)`) is the one place a boolean counts as 0/1."""
    return prim == "mul" and kinds in ("fb", "bf")


def _wrap(v) -> Expr:
    if isinstance(v, Expr):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Const(float(v))
    raise TypeError(f"not a scalar expression: {v!r}")


def _call(prim: str):
    def build(*args):
        return Call(prim, tuple(_wrap(a) for a in args))
    build.__name__ = prim
    return build


exp, log, log1p, tanh = _call("exp"), _call("log"), _call("log1p"), _call("tanh")
sign, sigmoid, logaddexp = _call("sign"), _call("sigmoid"), _call("logaddexp")
maximum, minimum, clip, where = _call("maximum"), _call("minimum"), _call("clip"), _call("where")
sqrt, power = _call("sqrt"), _call("power")


def leaves(e: Expr, cls) -> list:
    """The leaves of type `cls` (Arg, Attr, Const) in e, left to right."""
    if isinstance(e, Call):
        return [x for a in e.args for x in leaves(a, cls)]
    return [e] if isinstance(e, cls) else []


def calls(e: Expr) -> int:
    return 1 + sum(calls(a) for a in e.args) if isinstance(e, Call) else 0


def call_nodes(e: Expr) -> list:
    """The Call nodes of e, outermost first."""
    return [e] + [c for a in e.args for c in call_nodes(a)] if isinstance(e, Call) else []


# ---- the primitives, each written once per target ----------------------------------------------

@dataclass(frozen=True)
class Prim:
    """A scalar primitive. `takes`/`gives`: kinds ("f" number, "b" boolean). Each target form
    is a format string over the rendered arguments {0} {1} {2}, or an Expr over the
    placeholders _0 _1 _2 (a lowering into other primitives). In C forms {f} is the suffix of
    float math functions (expf) and {k} of float literals (1.0f); both are empty for double."""
    name: str
    takes: str
    gives: str
    numpy: object          # a NumPy ufunc's name (it takes out=), or a lowering
    c: object              # C99 that gcc and CUDA C++ both accept
    py: object             # Python over scalars (np.* functions), which numba compiles
    py32: str = ""         # the float32 numba form, where it differs
    errstate: str = ""     # the floating-point warning the NumPy form raises harmlessly
    libm: bool = False     # its float64 numba form is a libm call per element (no SVML here),
                           # slower than NumPy's vectorised loop


_0, _1, _2 = Arg("_0"), Arg("_1"), Arg("_2")


def _binary(name, ufunc, op):
    return Prim(name, "ff", "f", ufunc, f"({{0}} {op} {{1}})", f"({{0}} {op} {{1}})")


def _compare(name, ufunc, op):
    return Prim(name, "ff", "b", ufunc, f"({{0}} {op} {{1}})", f"({{0}} {op} {{1}})")


def _math(name, ufunc, c_name, **extra):
    return Prim(name, "f", "f", ufunc, c_name + "{f}({0})", f"np.{ufunc}({{0}})", **extra)


# NumPy's maximum and minimum propagate a NaN from either side (fmax would drop it); ties
# keep the first argument, as NumPy's scalar loops do.
_MAX_C = "({0} > {1} || isnan({0}) ? {0} : {1})"
_MIN_C = "({0} < {1} || isnan({0}) ? {0} : {1})"
# NumPy's logaddexp: equal arguments (infinities included) give x + log 2, a NaN gives NaN
_LOGADDEXP_C = ("({0} == {1} ? {0} + 0.693147180559945309417{k} "
                ": fmax{f}({0}, {1}) + log1p{f}(exp{f}(-fabs{f}({0} - {1}))))")

PRIMS: dict = {p.name: p for p in [
    _binary("add", "add", "+"), _binary("sub", "subtract", "-"),
    _binary("mul", "multiply", "*"), _binary("div", "divide", "/"),
    Prim("neg", "f", "f", "negative", "(-{0})", "(-{0})"),
    _math("exp", "exp", "exp", libm=True), _math("log", "log", "log", libm=True),
    _math("log1p", "log1p", "log1p", libm=True),
    _math("tanh", "tanh", "tanh", py32="tanh_f32({0})", libm=True),
    _math("abs", "absolute", "fabs"),
    _math("sqrt", "sqrt", "sqrt"),
    Prim("power", "ff", "f", "power", "pow{f}({0}, {1})", "np.power({0}, {1})", libm=True),
    # NumPy's sign in one pass; it keeps NaN, which (x > 0) - (x < 0) would make 0
    Prim("sign", "f", "f", "sign", "({0} != {0} ? {0} : ({0} > 0) - ({0} < 0))", "np.sign({0})"),
    Prim("maximum", "ff", "f", "maximum", _MAX_C, "np.maximum({0}, {1})"),
    Prim("minimum", "ff", "f", "minimum", _MIN_C, "np.minimum({0}, {1})"),
    # one NumPy pass, exact for large |x| and at infinities, where a composition is not
    Prim("logaddexp", "ff", "f", "logaddexp", _LOGADDEXP_C, "np.logaddexp({0}, {1})", libm=True),
    _compare("gt", "greater", ">"), _compare("ge", "greater_equal", ">="),
    _compare("lt", "less", "<"), _compare("le", "less_equal", "<="),
    Prim("and", "bb", "b", "logical_and", "({0} && {1})", "({0} and {1})"),
    Prim("where", "bff", "f", "where", "({0} ? {1} : {2})", "({1} if {0} else {2})"),
]}
# One NumPy pass where maximum then minimum take two. With scalar bounds (attributes) NumPy's
# clip keeps x at a tie (clip(-0.0, 0, 1) is -0.0), unlike maximum; a NaN anywhere gives NaN.
_LOW_C, _LOW_PY = "({0} < {1} || isnan({1}) ? {1} : {0})", "({1} if ({0} < {1} or {1} != {1}) else {0})"
PRIMS["clip"] = Prim(
    "clip", "fff", "f", "clip", f"({_LOW_C} > {{2}} || isnan({{2}}) ? {{2}} : {_LOW_C})",
    f"({{2}} if ({_LOW_PY} > {{2}} or {{2}} != {{2}}) else {_LOW_PY})")
# A primitive because its forms differ per target: NumPy's 1 / (1 + exp(-x)) (float32 exp costs
# half of tanh; exp's overflow to inf for x < -88 gives the right 0), and for float32 numba
# 0.5 + 0.5 tanh(x / 2) through the rational tanh (vectorisable, where exp is a scalar call).
PRIMS["sigmoid"] = Prim(
    "sigmoid", "f", "f", 1.0 / (1.0 + exp(-_0)), "(1.0{k} / (1.0{k} + exp{f}(-{0})))", "(1.0 / (1.0 + np.exp(-{0})))",
    py32="(np.float32(0.5) + np.float32(0.5) * tanh_f32(np.float32(0.5) * {0}))", errstate="over", libm=True)


def tanh_f32(v):
    """tanh(v) in float32 for numba: v * P(v^2) / Q(v^2) on [-9, 9], where tanh is within 2e-8
    of +-1 outside (the [13/6] minimax approximation Eigen uses); within 3e-7 of tanh, NaN
    stays NaN. numba vectorises it where np.tanh is a scalar call."""
    if v > np.float32(9.0):
        v = np.float32(9.0)
    elif v < np.float32(-9.0):
        v = np.float32(-9.0)
    v2 = v * v
    p = np.float32(-2.76076847742355e-16)
    p = p * v2 + np.float32(2.00018790482477e-13)
    p = p * v2 + np.float32(-8.60467152213735e-11)
    p = p * v2 + np.float32(5.12229709037114e-08)
    p = p * v2 + np.float32(1.48572235717979e-05)
    p = p * v2 + np.float32(6.37261928875436e-04)
    p = p * v2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * v2 + np.float32(1.18534705686654e-04)
    q = q * v2 + np.float32(2.26843463243900e-03)
    q = q * v2 + np.float32(4.89352518554385e-03)
    return v * p / q


PY_HELPERS = {"tanh_f32": tanh_f32}     # functions the float32 py forms call (numba: njit them)


# ---- templates --------------------------------------------------------------------------------

_RESERVED = {"xp", "out", "np", "math"} | set(PY_HELPERS)


@dataclass(frozen=True)
class Template:
    """An elementwise formula: array arguments `args`, constant attributes `attrs`, a body."""
    args: tuple
    attrs: tuple
    body: Expr

    def __post_init__(self):
        names = self.args + self.attrs
        bad = [n for n in names if not n.isidentifier() or keyword.iskeyword(n) or n.startswith("_")
               or n in _RESERVED]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"template names must be distinct identifiers, not reserved: {names}")
        if not set(a.name for a in leaves(self.body, Arg)) <= set(self.args) or not leaves(self.body, Arg):
            raise ValueError(f"{self.body} must read its arguments {self.args}, and only those")
        if not set(a.name for a in leaves(self.body, Attr)) <= set(self.attrs):
            raise ValueError(f"{self.body} reads attributes other than {self.attrs}")

    def __str__(self) -> str:
        return str(self.body)


def ufunc(t: Template) -> str:
    """The NumPy ufunc computing t in one call on its arguments then its attributes, in order
    (what an emitter can call directly, with out=), or ""."""
    b = t.body
    if not isinstance(b, Call) or not isinstance(PRIMS[b.prim].numpy, str) or b.prim == "where":
        return ""
    return PRIMS[b.prim].numpy if b.args == tuple(map(Arg, t.args)) + tuple(map(Attr, t.attrs)) else ""


def template(args: str, attrs: str, fn) -> Template:
    """Template("x dy", "lo hi", lambda x, dy, lo, hi: ...): the names, then the formula."""
    args, attrs = tuple(args.split()), tuple(attrs.split())
    return Template(args, attrs, fn(*[Arg(a) for a in args], *[Attr(a) for a in attrs]))



# ---- C and Python (numba) expressions ------------------------------------------------------------

def c_expr(t: Template, names: dict, dtype=np.float64) -> str:
    """The body as one C expression; `names` maps argument and attribute names to C text
    (a missing one stands for itself). For float32 the math functions are expf, tanhf, ...
    and literals 1.0f, so a float kernel stays float; NaN and infinities behave as NumPy's."""
    single = _single(dtype)
    fmt = {"f": "f" if single else "", "k": "f" if single else ""}
    return _render(t.body, lambda e: _c_leaf(e, names, single), lambda p: p.c, fmt)


def py_expr(t: Template, names: dict, dtype=np.float64) -> str:
    """The body as a Python expression over scalars, calling np.* (and, for float32, the
    functions of PY_HELPERS): numba compiles it (njit with error_model="numpy", so that 1 / 0
    is inf as in NumPy), and plain Python evaluates it over NumPy scalars. Constants are
    np.float32(...) for float32, so a float32 kernel stays float32."""
    single = _single(dtype)
    leaf = lambda e: py_number(e.value, single) if isinstance(e, Const) else str(names.get(e.name, e.name))
    return _render(t.body, leaf, lambda p: (p.py32 or p.py) if single else p.py, {})


def py_source(fn_name: str, t: Template, dtype=np.float64) -> str:
    """`def fn_name(<args>, <attrs>): return <py_expr>`, for numba's njit or vectorize."""
    return f"def {fn_name}({', '.join(t.args + t.attrs)}):\n    return {py_expr(t, {}, dtype)}\n"


def _single(dtype) -> bool:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"scalar templates render float32 or float64, not {dt}")
    return dt == np.float32


def _render(e: Expr, leaf, form, fmt: dict) -> str:
    if not isinstance(e, Call):
        return leaf(e)
    f = form(PRIMS[e.prim])
    if isinstance(f, Expr):
        return _render(substitute(f, e.args), leaf, form, fmt)
    return f.format(*(_render(a, leaf, form, fmt) for a in e.args), **fmt)


def substitute(e: Expr, args: tuple) -> Expr:
    """A lowering with its placeholders _0 _1 _2 replaced by `args`."""
    if isinstance(e, Call):
        return Call(e.prim, tuple(substitute(a, args) for a in e.args))
    return args[int(e.name[1:])] if isinstance(e, Arg) and e.name.startswith("_") else e


def _c_leaf(e: Expr, names: dict, single: bool) -> str:
    if not isinstance(e, Const):
        text = str(names.get(e.name, e.name))
        return text if re.fullmatch(r"[\w.\[\]]+", text) else f"({text})"
    v = float(e.value)
    if v != v:
        return "NAN"
    if v in (np.inf, -np.inf):
        return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(v) + ("f" if single else "")
    return f"({text})" if text.startswith("-") else text


def py_number(v: float, single: bool) -> str:
    v = float(v)
    text = "np.nan" if v != v else "np.inf" if v == np.inf else "(-np.inf)" if v == -np.inf else repr(v)
    if single:
        return f"np.float32({text})"
    return f"({text})" if text.startswith("-") else text


# ---- the text form ----------------------------------------------------------------------------

_INFIX = {"add": ("+", 2), "sub": ("-", 2), "mul": ("*", 3), "div": ("/", 3), "and": ("&", 1),
          "gt": (">", 0), "ge": (">=", 0), "lt": ("<", 0), "le": ("<=", 0)}


def _show(e: Expr, outer: int = 0) -> str:
    """Python's own syntax for the tree (precedences as Python's: & binds tighter than >)."""
    if isinstance(e, Const):
        text = repr(float(e.value))
        return text[:-2] if text.endswith(".0") else text
    if not isinstance(e, Call):
        return e.name
    if e.prim == "neg":
        return _paren("-" + _show(e.args[0], 4), 4 < outer)
    if e.prim not in _INFIX:
        return f"{e.prim}({', '.join(_show(a) for a in e.args)})"
    op, prec = _INFIX[e.prim]
    return _paren(f"{_show(e.args[0], prec)} {op} {_show(e.args[1], prec + 1)}", prec < outer)


def _paren(text: str, wrap: bool) -> str:
    return f"({text})" if wrap else text
