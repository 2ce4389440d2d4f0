"""Declarations -> named, typed entities: the dims, inputs and params sections (the check stage).

Each entry is checked on its own. One with a mistake is reported and declared as poisoned
(type ERROR), so that the equations using it are not reported again.
"""
from __future__ import annotations

import math
import keyword
import re

from . import ir, parse
from ..core.errors import Diagnostics, SourcePos, SpecError, did_you_mean
from ..core.ops import BY_SPELLING, Dim, Kind, Type, floats
from .spec import YNode, describe, fields, mapping
from .typecheck import ERROR, MAX_SIZE, RESERVED, Entity, snippet

MAX_DIM = MAX_SIZE
MAX_PARAM_ELEMENTS = 1 << 30
INITS = {"zeros": (0,), "ones": (0,), "orthogonal": (0,), "xavier": (0,), "auto": (0,),
         "constant": (1,), "normal": (1, 2), "uniform": (1, 2)}      # initialiser -> argument counts
_REDUCTION = re.compile(r"(sum|mean|max|min)_[A-Za-z]")       # as the grammar's REDUCER
INIT_HINT = ("initialisers: zeros, ones, constant(c), normal(std), normal(mean, std), uniform(a), "
             "uniform(lo, hi), orthogonal, xavier, auto")


# ---- names ---------------------------------------------------------------------------------

# A spec's inputs, params and variables become identifiers in the emitted code, where every
# name the code makes for itself begins with _ and the adjoint of v is d_v (backends/numpy/passes.py):
# spec names in those forms are refused, so the two namespaces are disjoint by construction.
GENERATED_PREFIXES = ("_", "d_")

# Keys the Python API puts beside a spec's names in one dict (DESIGN.md's API), by role
API_KEYS = {"input": {"lengths": "inputs['lengths'] holds the sequence lengths"},
            "var": {"loss": "model.forward() returns the mean loss under 'loss'",
                    "losses": "model.forward() returns the per-sequence losses under 'losses'"}}


def declare(names: dict, ent: Entity, errs: Diagnostics, axes=()) -> bool:
    """Add a name, reporting a clash with an earlier one."""
    problem, hint = _name_problem(names, ent.name, axes)
    if not problem and ent.role != "dim":
        problem, hint = _generated_name_problem(ent.name) if ent.name not in API_KEYS.get(ent.role, {}) else \
            (f"'{ent.name}' is reserved: {API_KEYS[ent.role][ent.name]}", "choose another name")
        if problem:                      # reported here; its uses need no error of their own
            errs.add(ent.pos, problem, hint)
            poison(names, ent.name, ent.role, ent.axis)
            return False
    if problem:
        errs.add(ent.pos, problem, hint)
        return False
    names[ent.name] = ent
    return True


def _name_problem(names: dict, name: str, axes) -> tuple[str, str]:
    if not is_name(name):
        return f"'{name}' is not a valid name", "names are ASCII letters, digits and _, not starting with a digit"
    if name in names:
        other = names[name]
        where = f" on line {other.pos.line}" if other.pos else ""
        return f"{name} is already defined as {_article(other.role)}{where}", "rename one of them"
    if name in BY_SPELLING:
        return f"'{name}' is the name of an op", "choose another name"
    if name in RESERVED or name in axes:
        return f"'{name}' is reserved: it is {'a time axis' if name in axes else 'the last step'}", \
            "choose another name"
    if _REDUCTION.match(name):
        return (f"'{name}' reads as a reduction ({name.split('_')[0]} over an axis)",
                "names beginning sum_, mean_, max_ or min_ are reductions; choose another name")
    return "", ""


def _generated_name_problem(name: str) -> tuple[str, str]:
    if keyword.iskeyword(name) or name.startswith(GENERATED_PREFIXES):
        return (f"'{name}' is reserved for the generated code",
                "choose another name; names may not be Python keywords or begin with "
                + " or ".join(GENERATED_PREFIXES))
    return "", ""


def is_name(text) -> bool:
    """A name the expression grammar can read: ASCII letters, digits and _."""
    return isinstance(text, str) and text.isidentifier() and text.isascii()


def _article(role: str) -> str:
    return {"input": "an input", "var": "a variable"}.get(role, f"a {role}")


def poison(names: dict, name: str, role: str, axis: str | None = None) -> None:
    """Declare a name whose entry had an error (already reported): reading it stays quiet."""
    if is_name(name) and name not in names:
        names[name] = Entity(name, role, ERROR, axis)


# ---- dims ----------------------------------------------------------------------------------

class DimTable(dict):
    """Dim name -> Dim. `failed` names dims whose own entry was wrong: a size that uses one
    is not reported again."""

    def __init__(self):
        super().__init__()
        self.failed: set[str] = set()


class _FailedDim(Exception):
    """A size uses a dim whose definition was already reported."""


def declare_dims(node: YNode | None, overrides: dict, errs: Diagnostics, tree: YNode) -> DimTable:
    dims = DimTable()
    entries = mapping(node, "dims", errs)
    overrides = {str(k): v for k, v in overrides.items()}
    for key in overrides:
        if key not in entries:
            errs.add(node.pos if node else tree.pos, f"dim override {key}={overrides[key]!r}: "
                     f"the spec has no dim {key}", did_you_mean(key, entries) or
                     "dims: " + (", ".join(entries) or "none"))
    for key, value in entries.items():
        dim = (_override(key, overrides[key], node.key_pos[key], dims, errs) if key in overrides
               else dim_value(value, dims, errs))
        problem, hint = _name_problem({}, key, ())
        if problem:
            errs.add(node.key_pos[key], problem.replace("name", "dim name", 1) if "valid" in problem else problem, hint)
            dims.failed.add(key)
        elif dim is None:
            dims.failed.add(key)
        else:
            dims[key] = Dim(dim.value, key)
    return dims


def dim_names(dims: DimTable) -> dict:
    """The names table, starting with the dims (the failed ones poisoned)."""
    names = {n: Entity(n, "dim", floats(d), None) for n, d in dims.items()}
    for n in dims.failed:
        poison(names, n, "dim")
    return names


def _override(key: str, value, pos: SourcePos, dims: dict, errs: Diagnostics) -> Dim | None:
    """A size given from outside the spec (the CLI's --set H=128, or H=2*V)."""
    if isinstance(value, str) and value.strip():
        return dim_value(YNode(value, pos, value, (pos.line, pos.col)), dims, errs)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DIM:
        return Dim(value, key)
    errs.add(pos, f"dim override {key}={value!r}: a size must be a whole number from 1 to {MAX_DIM:,}")
    return None


def dim_value(node: YNode, dims: dict, errs: Diagnostics) -> Dim | None:
    """A size: a whole number, a dim name or an expression of dims such as F*(2*C+1)."""
    if isinstance(node.value, bool) or not isinstance(node.value, (int, str)):
        errs.add(node.pos, f"a size must be a whole number or a dim expression, got {describe(node)}",
                 "for example 16, H or F*(2*C+1)")
        return None
    if isinstance(node.value, int):
        value, name = node.value, ""
    else:
        try:
            value, name = _eval_dim(parse.parse_dim(node), dims), str(node.value).replace(" ", "")
        except SpecError as exc:
            errs.extend(exc)
            return None
        except _FailedDim:
            return None
    if not 1 <= value <= MAX_DIM:
        errs.add(node.pos, f"size {value:,} is out of range", f"sizes run from 1 to {MAX_DIM:,}")
        return None
    return Dim(value, name)


def _eval_dim(node, dims: dict) -> int:
    if isinstance(node, parse.Num):
        if not math.isfinite(node.value) or node.value != int(node.value):
            raise SpecError.at(node.pos, f"a size must be a whole number, got {node.text}")
        return int(node.value)
    if isinstance(node, parse.Name):
        if node.name in getattr(dims, "failed", ()):
            raise _FailedDim(node.name)
        if node.name not in dims:
            raise SpecError.at(node.pos, f"unknown dim '{node.name}'",
                               did_you_mean(node.name, dims) or "declare it under dims:")
        return dims[node.name].value
    if isinstance(node, parse.Neg):
        return -_eval_dim(node.operand, dims)
    a, b = _eval_dim(node.lhs, dims), _eval_dim(node.rhs, dims)
    if node.op == "/" and (b == 0 or a % b):
        raise SpecError.at(node.pos, f"{snippet(node.pos)} is not a whole number")
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // max(b, 1)}[node.op]


def shape_of(node: YNode | None, dims: dict, errs: Diagnostics) -> tuple | None:
    if node is None:
        return None
    items = node.value if node.is_list else [node]
    shape = tuple(dim_value(n, dims, errs) for n in items)
    return None if None in shape else shape


# ---- inputs and their time axes ------------------------------------------------------------

def time_axes(node: YNode | None, dims: dict) -> tuple:
    """The time axes the inputs declare, even those of inputs with other mistakes, so that a
    wrong input does not make every equation on its axis an error too."""
    entries = node.value.values() if node is not None and node.is_map else ()
    axes = [e.value["axis"].value for e in entries if e.is_map and "axis" in e.value]
    return tuple(dict.fromkeys(a for a in axes if not _axis_problem(a, dims)))


def _axis_problem(axis, dims: dict) -> str:
    if not is_name(axis):
        return "axis must be a name such as t"
    if axis in dims or axis in BY_SPELLING or axis in RESERVED:
        return f"axis '{axis}' is already the name of {'a dim' if axis in dims else 'an op or `end`'}"
    return ""


def declare_inputs(node, dims, names, axes, errs) -> list:
    inputs = []
    for name, entry in mapping(node, "inputs", errs).items():
        inp = _input(name, entry, dims, errs)
        if inp is None:
            axis = entry.value.get("axis") if entry.is_map else None
            poison(names, name, "input", axis.value if axis and axis.value in axes else None)
        elif declare(names, Entity(name, "input", inp.type, inp.axis, node.key_pos[name]), errs, axes):
            inputs.append(inp)
    return inputs


def _input(name: str, entry: YNode, dims: dict, errs: Diagnostics) -> ir.Input | None:
    allowed = ("float", "onehot", "index", "axis")
    f = fields(entry, f"input {name}", allowed, "{onehot: V, axis: t}", errs)
    if f is None or any(key not in allowed for key in f):     # a misspelt axis: would cascade
        return None
    kinds = [k for k in ("float", "onehot", "index") if k in f]
    if len(kinds) != 1:
        errs.add(entry.pos, f"input {name} needs exactly one of float: [shape], onehot: V, index: V",
                 "for example {onehot: V, axis: t} or {float: [F], axis: t}")
        return None
    kind, axis = Kind(kinds[0]), f.get("axis")
    problem = axis is not None and _axis_problem(axis.value, dims)
    if problem:
        errs.add(axis.pos, f"input {name}: {problem}", "axes are short names such as t, s or u")
        return None
    size = shape_of(f[kinds[0]], dims, errs)
    if size is None:
        return None
    if kind is not Kind.FLOAT and len(size) != 1:
        errs.add(f[kinds[0]].pos, f"input {name}: {kind.value} takes one size, the number of classes")
        return None
    t = {Kind.FLOAT: lambda: Type(kind, size), Kind.ONEHOT: lambda: Type(kind, size, size[0]),
         Kind.INDEX: lambda: Type(kind, (), size[0])}[kind]()
    return ir.Input(name, t, axis.value if axis else None, pos=entry.pos)


# ---- params ----------------------------------------------------------------------------------

def declare_params(node, dims, names, axes, errs) -> list:
    params = []
    for name, entry in mapping(node, "params", errs).items():
        f = fields(entry, f"param {name}", ("shape", "init"), "{shape: [H, V]}", errs)
        shape = _param_shape(name, entry, f, dims, errs) if f is not None else None
        init = _init(f.get("init"), name, shape, errs) if f is not None else None
        if shape is None or init is None:
            poison(names, name, "param")
            continue
        t = floats(*shape)
        if declare(names, Entity(name, "param", t, None, node.key_pos[name]), errs, axes):
            params.append(ir.Param(name, t, init, pos=node.key_pos[name]))
    return params


def _param_shape(name: str, entry: YNode, f: dict, dims: dict, errs: Diagnostics) -> tuple | None:
    if "shape" not in f:
        errs.add(entry.pos, f"param {name} needs a shape", "for example {shape: [H, V]}")
        return None
    shape = shape_of(f["shape"], dims, errs)
    if shape is not None and math.prod(d.value for d in shape) > MAX_PARAM_ELEMENTS:
        errs.add(f["shape"].pos, f"param {name} has more than {MAX_PARAM_ELEMENTS:,} entries")
        return None
    return shape


def _init(node: YNode | None, name: str, shape, errs: Diagnostics) -> ir.Init | None:
    if node is None:
        return ir.Init("auto")
    if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        errs.add(node.pos, f"param {name}: init {node.value} is a number, not an initialiser",
                 f"did you mean constant({node.value})?")
        return None
    if not isinstance(node.value, str):
        errs.add(node.pos, f"param {name}: init must be an initialiser such as normal(0.01)", INIT_HINT)
        return None
    try:
        expr = parse.parse_expr(node)
    except SpecError as exc:
        errs.extend(exc)
        return None
    problem, hint = _init_problem(expr, shape)
    if problem:
        errs.add(node.pos, f"param {name}: {problem}", hint)
        return None
    return ir.Init(*_init_call(expr))


def _init_call(expr) -> tuple:
    """(function name, its arguments as numbers or None) of an initialiser expression."""
    if isinstance(expr, parse.Name):
        return expr.name, ()
    if isinstance(expr, parse.Call) and not expr.kwargs:
        return expr.fn, tuple(_number(a) for a in expr.args)
    return None, ()


def _init_problem(expr, shape) -> tuple[str, str]:
    """What is wrong with an initialiser, as (message, hint); ('', '') if nothing."""
    fn, args = _init_call(expr)
    if fn not in INITS:
        shown = f"'{fn}'" if fn else f"'{snippet(expr.pos)}'"
        return f"unknown initialiser {shown}", did_you_mean(fn or "", INITS) or INIT_HINT
    if len(args) not in INITS[fn]:
        counts = " or ".join(str(n) for n in INITS[fn])
        return f"{fn} takes {counts} argument{'s' * (counts != '1')}, got {len(args)}", INIT_HINT
    if any(a is None or not math.isfinite(a) for a in args):
        return f"the arguments of {fn} must be plain numbers", INIT_HINT
    if fn == "normal" and args[-1] < 0:
        return f"normal's standard deviation must not be negative, got {args[-1]:g}", ""
    if fn == "uniform" and (args[0] > args[1] if len(args) == 2 else args[0] < 0):
        lo, hi = args if len(args) == 2 else (-args[0], args[0])
        return f"uniform draws from [{lo:g}, {hi:g}], whose low end is above its high end", \
            f"write uniform({hi:g}, {lo:g})" if len(args) == 2 else f"write uniform({-args[0]:g})"
    if fn == "orthogonal" and shape is not None and len(shape) != 2:
        return f"orthogonal needs a matrix, got {len(shape)} axes", "use normal(0.01) or xavier"
    return "", ""


def _number(node) -> float | None:
    if isinstance(node, parse.Num):
        return node.value
    if isinstance(node, parse.Neg) and isinstance(node.operand, parse.Num):
        return -node.operand.value
    return None
