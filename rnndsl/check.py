"""Located YAML tree -> typed, verified `ir.Model` (the check stage).

Sections are checked one by one, collecting every independent error before raising:
dims, inputs (which declare the time axes), params, equations and state, then the types
of all variables (a fixpoint, since recurrences read variables defined later), the loss,
outputs, generate and train.
"""
from __future__ import annotations

import math

from . import ir, parse
from .errors import Diagnostics, SourcePos, SpecError, did_you_mean
from .ops import BY_SPELLING, SCALAR, Dim, Kind, Type, floats
from .spec import YNode
from .typecheck import ERROR, HOLE, RESERVED, Entity, Pending, Poisoned, Typer, snippet

MAX_DIM = 1 << 24
MAX_PARAM_ELEMENTS = 1 << 30
MAX_EQUATIONS = 1_000
INITS = {"zeros": 0, "ones": 0, "orthogonal": 0, "xavier": 0, "auto": 0,
         "constant": (1,), "normal": (1, 2), "uniform": (1, 2)}
TRAIN_KEYS = {"optimizer": str, "lr": float, "clip": float, "bptt": int, "batch": int,
              "epochs": int, "steps": int, "momentum": float, "nesterov": bool,
              "weight_decay": float, "schedule": str, "decay": float, "decay_every": int,
              "patience": int, "seed": int, "eval_every": int, "beta1": float, "beta2": float,
              "eps": float, "warmup": int, "truncate": int, "bucket": bool}
GENERATE_KEYS = ("feed", "max_len", "start", "stop", "temperature")


def check(tree: YNode, dims: dict | None = None, name: str = "") -> ir.Model:
    """Check a parsed spec; `dims` overrides the spec's dims (as the CLI's --set does)."""
    errs = Diagnostics()
    sections = tree.value
    dim_map = _dims(sections.get("dims"), dims or {}, errs, tree)
    names: dict[str, Entity] = {n: Entity(n, "dim", floats(d), None) for n, d in dim_map.items()}
    inputs = _inputs(sections.get("inputs"), dim_map, names, errs)
    axes = tuple(dict.fromkeys(i.axis for i in inputs if i.axis))
    params = _params(sections.get("params"), dim_map, names, axes, errs)
    equations = _equations(sections, tree, names, axes, errs)
    states, init_eqs = _states(sections.get("state"), equations, dim_map, names, errs)
    errs.check()
    types = infer_types(equations + init_eqs, names, axes, errs)
    typed = _type_equations(equations + init_eqs, types, names, axes, errs)
    init_params = _check_state_inits(states, typed, types, errs)
    loss = _loss(sections, tree, names, axes, errs)
    outputs = _outputs(sections.get("outputs"), names, errs)
    generate = _generate(sections.get("generate"), inputs, names, errs)
    train = _train(sections.get("train"), errs)
    errs.check()
    return ir.verify(ir.Model(
        name=_text(sections.get("name"), name, errs), doc=_text(sections.get("doc"), "", errs),
        path=tree.pos.path, dims=tuple(dim_map.items()), axes=axes, inputs=tuple(inputs),
        params=tuple(params + init_params), equations=tuple(typed), states=tuple(states),
        loss=loss, outputs=outputs, generate=generate, train=train))


# ---- small helpers ------------------------------------------------------------------------

def _text(node: YNode | None, default: str, errs: Diagnostics) -> str:
    if node is None:
        return default
    if not isinstance(node.value, (str, int, float)) or isinstance(node.value, bool):
        errs.add(node.pos, "expected text here")
        return default
    return str(node.value)


def _mapping(node: YNode | None, what: str, errs: Diagnostics) -> dict:
    if node is None or node.value is None:
        return {}
    if not node.is_map:
        errs.add(node.pos, f"{what} must be a mapping of names to entries",
                 f"write each on its own line as `name: ...`")
        return {}
    return node.value


def _declare(names: dict, ent: Entity, errs: Diagnostics, axes=()) -> bool:
    """Add a name, reporting a clash with an earlier one."""
    pos = ent.pos
    if not ent.name.isidentifier():
        errs.add(pos, f"'{ent.name}' is not a valid name", "names are letters, digits and _")
    elif ent.name in names:
        other = names[ent.name]
        errs.add(pos, f"{ent.name} is already defined as a {other.role}"
                 + (f" on line {other.pos.line}" if other.pos else ""), "rename one of them")
    elif ent.name in BY_SPELLING or ent.name in RESERVED or ent.name in axes:
        errs.add(pos, f"'{ent.name}' is reserved (an op, an axis or `end`)", "choose another name")
    elif ent.name.split("_")[0] in ("sum", "mean", "max", "min") and "_" in ent.name:
        errs.add(pos, f"'{ent.name}' reads as a reduction ({ent.name.split('_')[0]} over an axis)",
                 "names beginning sum_, mean_, max_ or min_ are reductions; choose another name")
    else:
        names[ent.name] = ent
        return True
    return False


def dim_value(node: YNode, dims: dict, errs: Diagnostics) -> Dim | None:
    """A size: a whole number, a dim name or an expression of dims such as F*(2*C+1)."""
    if isinstance(node.value, bool) or not isinstance(node.value, (int, str)):
        errs.add(node.pos, f"a size must be a whole number or a dim expression, got {node.value!r}")
        return None
    if isinstance(node.value, int):
        value, name = node.value, ""
    else:
        try:
            value, name = _eval_dim(parse.parse_dim(node), dims), str(node.value).replace(" ", "")
        except SpecError as exc:
            errs.extend(exc)
            return None
    if not 1 <= value <= MAX_DIM:
        errs.add(node.pos, f"size {value:,} is out of range", f"sizes run from 1 to {MAX_DIM:,}")
        return None
    return Dim(value, name)


def _eval_dim(node, dims: dict) -> int:
    if isinstance(node, parse.Num):
        if node.value != int(node.value):
            raise SpecError.at(node.pos, f"a size must be a whole number, got {node.text}")
        return int(node.value)
    if isinstance(node, parse.Name):
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


def _shape(node: YNode | None, dims: dict, errs: Diagnostics) -> tuple | None:
    if node is None:
        return None
    items = node.value if node.is_list else [node]
    shape = tuple(dim_value(n, dims, errs) for n in items)
    return None if None in shape else shape


def _fields(entry: YNode, name: str, allowed: tuple, errs: Diagnostics) -> dict:
    if entry.value is None:
        return {}
    if not entry.is_map:
        errs.add(entry.pos, f"{name}: expected a mapping such as {{{allowed[0]}: ...}}")
        return {}
    for key in entry.value:
        if key not in allowed:
            errs.add(entry.key_pos[key], f"{name}: unknown field '{key}'",
                     did_you_mean(key, allowed) or "fields are: " + ", ".join(allowed))
    return entry.value


# ---- sections ------------------------------------------------------------------------------

def _dims(node: YNode | None, overrides: dict, errs: Diagnostics, tree: YNode) -> dict:
    dims: dict[str, Dim] = {}
    entries = _mapping(node, "dims", errs)
    for key in overrides:
        if key not in entries:
            errs.add(node.pos if node else tree.pos, f"dim override {key}={overrides[key]}: "
                     f"the spec has no dim {key}", did_you_mean(key, entries) or
                     "dims: " + (", ".join(entries) or "none"))
    for key, value in entries.items():
        if key in overrides:
            value = YNode(overrides[key], node.key_pos[key])
        dim = dim_value(value, dims, errs)
        if not key.isidentifier():
            errs.add(node.key_pos[key], f"'{key}' is not a valid dim name")
        elif dim is not None:
            dims[key] = Dim(dim.value, key)
    return dims


def _inputs(node, dims, names, errs) -> list:
    inputs = []
    for name, entry in _mapping(node, "inputs", errs).items():
        f = _fields(entry, f"input {name}", ("float", "onehot", "index", "axis"), errs)
        kinds = [k for k in ("float", "onehot", "index") if k in f]
        if len(kinds) != 1:
            errs.add(entry.pos, f"input {name} needs exactly one of float: [shape], onehot: V, index: V",
                     "for example {onehot: V, axis: t} or {float: [F], axis: t}")
            continue
        kind = Kind(kinds[0])
        size = _shape(f[kinds[0]], dims, errs)
        axis = f.get("axis")
        if axis is not None and not (isinstance(axis.value, str) and axis.value.isidentifier()):
            errs.add(axis.pos, f"input {name}: axis must be a name such as t")
            continue
        if size is None:
            continue
        if kind is not Kind.FLOAT and len(size) != 1:
            errs.add(f[kinds[0]].pos, f"input {name}: {kind.value} takes one size, the number of classes")
            continue
        t = {Kind.FLOAT: lambda: Type(kind, size), Kind.ONEHOT: lambda: Type(kind, size, size[0]),
             Kind.INDEX: lambda: Type(kind, (), size[0])}[kind]()
        inp = ir.Input(name, t, axis.value if axis else None, pos=entry.pos)
        if _declare(names, Entity(name, "input", t, inp.axis, names_pos(entry, name, node)), errs):
            inputs.append(inp)
    return inputs


def names_pos(entry: YNode, name: str, parent: YNode) -> SourcePos:
    return parent.key_pos.get(name, entry.pos)


def _params(node, dims, names, axes, errs) -> list:
    params = []
    for name, entry in _mapping(node, "params", errs).items():
        f = _fields(entry, f"param {name}", ("shape", "init"), errs)
        if "shape" not in f:
            errs.add(entry.pos, f"param {name} needs a shape", "for example {shape: [H, V]}")
            continue
        shape = _shape(f["shape"], dims, errs)
        init = _init(f.get("init"), name, shape, errs)
        if shape is None or init is None:
            continue
        if math.prod(d.value for d in shape) > MAX_PARAM_ELEMENTS:
            errs.add(f["shape"].pos, f"param {name} has more than {MAX_PARAM_ELEMENTS:,} entries")
            continue
        t = floats(*shape)
        if _declare(names, Entity(name, "param", t, None, node.key_pos[name]), errs, axes):
            params.append(ir.Param(name, t, init, pos=node.key_pos[name]))
    return params


def _init(node: YNode | None, name: str, shape, errs: Diagnostics) -> ir.Init | None:
    if node is None:
        return ir.Init("auto")
    try:
        expr = parse.parse_expr(node) if isinstance(node.value, str) else None
    except SpecError as exc:
        errs.extend(exc)
        return None
    fn, args = None, ()
    if isinstance(expr, parse.Name):
        fn = expr.name
    elif isinstance(expr, parse.Call) and not expr.kwargs:
        fn = expr.fn
        args = tuple(_number(a) for a in expr.args)
    arity = INITS.get(fn)
    if fn is None or arity is None or None in args or len(args) not in (arity or (0,)):
        errs.add(node.pos, f"param {name}: unknown initialiser {node.value!r}",
                 "initialisers: zeros, ones, constant(c), normal(std), normal(mean, std), "
                 "uniform(a), uniform(lo, hi), orthogonal, xavier, auto")
        return None
    if fn == "orthogonal" and shape is not None and len(shape) != 2:
        errs.add(node.pos, f"param {name}: orthogonal needs a matrix, got {len(shape)} axes")
        return None
    return ir.Init(fn, args)


def _number(node) -> float | None:
    if isinstance(node, parse.Num):
        return node.value
    if isinstance(node, parse.Neg) and isinstance(node.operand, parse.Num):
        return -node.operand.value
    return None


def _equations(sections, tree, names, axes, errs) -> list:
    node = sections.get("equations")
    if node is None:
        errs.add(tree.pos, "the spec has no equations:",
                 "add `equations: |` with lines such as h[t] = tanh(W @ x[t] + U @ h[t-1] + b)")
        return []
    try:
        eqs = parse.parse_equations(node)
    except SpecError as exc:
        errs.extend(exc)
        return []
    if len(eqs) > MAX_EQUATIONS:
        errs.add(node.pos, f"more than {MAX_EQUATIONS} equations")
        return []
    kept = []
    for eq in eqs:
        if eq.axis is not None and eq.axis not in axes:
            errs.add(eq.target_pos, f"{eq.name}[{eq.axis}]: there is no axis {eq.axis}",
                     f"axes come from the inputs' axis: entries; this spec has {', '.join(axes) or 'none'}")
            continue
        if _declare(names, Entity(eq.name, "var", None, eq.axis, eq.target_pos), errs, axes):
            kept.append(eq)
    return kept


def _states(node, equations, dims, names, errs) -> tuple:
    states, init_eqs = [], []
    by_name = {eq.name: eq for eq in equations}
    for var, entry in _mapping(node, "state", errs).items():
        f = _fields(entry, f"state {var}", ("init", "shape"), errs)
        eq = by_name.get(var)
        pos = node.key_pos[var]
        if eq is None or eq.axis is None:
            errs.add(pos, f"state {var}: no recurrent variable {var}" if eq is None else
                     f"state {var}: {var} is static; only sequences have states",
                     did_you_mean(var, by_name) or "state: names a variable defined as v[t] = ...")
            continue
        shape = _shape(f.get("shape"), dims, errs)
        if shape is not None:
            names[var] = Entity(var, "var", floats(*shape), eq.axis, eq.target_pos)
        init = f.get("init")
        text = init.value if init is not None else "zeros"
        source = f"{var}_init" if text != "zeros" else None
        if text in ("zeros", "learned") or not isinstance(text, str):
            if text not in ("zeros", "learned"):
                errs.add(init.pos, f"state {var}: init must be zeros, learned or an expression")
                continue
            if text == "learned" and source in names:
                errs.add(pos, f"state {var}: a learned init is the parameter {source}, "
                         f"but {source} is already defined", f"rename {source}")
                continue
            states.append(ir.State(var, source, text == "learned", pos=init.pos if init else pos))
            continue
        try:
            expr = parse.parse_expr(init)
        except SpecError as exc:
            errs.extend(exc)
            continue
        init_eq = parse.Equation(init.pos, source, None, expr, init.pos)
        if _declare(names, Entity(source, "var", None, None, init.pos), errs):
            init_eqs.append(init_eq)
            states.append(ir.State(var, source, False, pos=init.pos))
    return states, init_eqs


# ---- types ----------------------------------------------------------------------------------

def infer_types(equations, names, axes, errs) -> dict:
    """Every variable's type: first by substitution (variables whose inputs are known), then,
    for recurrences, by guessing from the parts that are known (W @ h[t-1] is [rows of W])."""
    pending = {eq.name: eq for eq in equations}
    for name in list(pending):
        if names[name].type is not None:       # given by state: {shape: ...}
            pending.pop(name)
    while pending:
        progress = _infer_round(pending, names, axes, errs, guess=False)
        if not progress:
            progress = _infer_round(pending, names, axes, errs, guess=True)
        if not progress:
            for eq in pending.values():
                errs.add(eq.target_pos, f"cannot infer the shape of {eq.name}",
                         f"its equation only passes {eq.name} through ops that keep shapes; "
                         f"state the shape: `state: {{{eq.name}: {{shape: [H]}}}}`")
                names[eq.name] = Entity(eq.name, "var", ERROR, eq.axis, eq.target_pos)
            break
    return {n: e.type for n, e in names.items() if e.role == "var"}


def _infer_round(pending: dict, names, axes, errs, guess: bool) -> bool:
    progress = False
    for name, eq in list(pending.items()):
        try:
            t = Typer(names, axes, guess).expr(eq.expr, eq.axis).type
        except Pending:
            continue
        except Poisoned:
            t = ERROR
        except SpecError:
            t = ERROR                          # reported by the strict pass below
        if t is None or t is HOLE:
            continue
        names[name] = Entity(name, "var", t, eq.axis, eq.target_pos)
        del pending[name]
        progress = True
    return progress


def _type_equations(equations, types, names, axes, errs) -> list:
    typed = []
    for eq in equations:
        try:
            expr = Typer(names, axes).expr(eq.expr, eq.axis)
        except Poisoned:
            continue
        except SpecError as exc:
            errs.extend(exc)
            continue
        if types.get(eq.name) is not ERROR and expr.type != types[eq.name]:
            errs.add(eq.pos, f"{eq.name} is used as {types[eq.name]} but its equation gives {expr.type}",
                     f"check the shapes of the terms in {eq.name}'s equation")
            continue
        if expr.axis is not None and expr.axis != eq.axis:
            lhs = f"{eq.name}[{eq.axis}]" if eq.axis else eq.name
            errs.add(eq.expr.pos, f"{lhs} is defined from values over {expr.axis}",
                     f"write {eq.name}[{expr.axis}] = ..., or reduce: mean_{expr.axis} ...")
            continue
        typed.append(ir.Equation(eq.name, expr.type, eq.axis, expr, snippet(eq.pos), pos=eq.pos))
    return typed


def _check_state_inits(states, typed, types, errs) -> list:
    """Learned inits become parameters; expression inits must have their variable's type."""
    params, by_name = [], {eq.name: eq for eq in typed}
    for s in states:
        var_type = types.get(s.var)
        if var_type is None or var_type is ERROR or s.source is None:
            continue
        if s.learned:
            params.append(ir.Param(s.source, Type(Kind.FLOAT, var_type.shape), ir.Init("zeros"), pos=s.pos))
            continue
        init = by_name.get(s.source)
        if init is not None and (init.type.dims != var_type.dims or init.type.kind is Kind.INDEX):
            errs.add(s.pos, f"ill-shaped state init: {s.var} is {var_type} but "
                     f"{snippet(s.pos)} is {init.type}", f"the init must have {s.var}'s shape")
    return params


# ---- loss, outputs, generate, train ----------------------------------------------------------

def _loss(sections, tree, names, axes, errs) -> ir.Expr:
    node = sections.get("loss")
    if node is None:
        errs.add(tree.pos, "the spec has no loss:", "for example loss: mean_t cross_entropy(y[t], target[t])")
        return ir.Const(SCALAR, None, 0.0)
    try:
        expr = Typer(names, axes).expr(parse.parse_expr(node), None)
    except Poisoned:
        return ir.Const(SCALAR, None, 0.0)
    except SpecError as exc:
        errs.extend(exc)
        return ir.Const(SCALAR, None, 0.0)
    if expr.type != SCALAR:
        errs.add(node.pos, f"the loss must be a single number per sequence, but it is {expr.type}",
                 "losses such as cross_entropy and mse give numbers; reduce over time with mean_t")
    return expr


def _outputs(node, names, errs) -> tuple:
    if node is None:
        return ()
    items = node.value if node.is_list else [node]
    out = []
    for item in items:
        ent = names.get(str(item.value))
        if ent is None or ent.role == "dim":
            candidates = [n for n, e in names.items() if e.role != "dim"]
            errs.add(item.pos, f"unknown output '{item.value}'", did_you_mean(str(item.value), candidates))
        else:
            out.append(ent.name)
    return tuple(out)


def _generate(node, inputs, names, errs) -> ir.Generate | None:
    if node is None:
        return None
    f = _fields(node, "generate", GENERATE_KEYS, errs)
    feed = []
    feed_node = f.get("feed")
    by_name = {i.name: i for i in inputs}
    for inp, out in (_mapping(feed_node, "generate: feed", errs) if feed_node else {}).items():
        src = names.get(str(out.value))
        if inp not in by_name or by_name[inp].axis is None:
            errs.add(feed_node.key_pos[inp], f"generate: feed: {inp} is not a sequence input",
                     did_you_mean(inp, by_name))
        elif src is None or src.role != "var" or src.axis is None:
            errs.add(out.pos, f"generate: feed: {out.value} is not a sequence variable",
                     did_you_mean(str(out.value), [n for n, e in names.items() if e.role == "var"]))
        elif src.type not in (None, ERROR) and by_name[inp].type.kind is not Kind.FLOAT \
                and src.type.dims[-1:] != (by_name[inp].type.classes.value,):
            errs.add(out.pos, f"generate: feed: {out.value} is {src.type}, but {inp} takes "
                     f"{by_name[inp].type.classes} classes")
        else:
            feed.append((inp, src.name))
    max_len = f.get("max_len")
    if max_len is not None and (not isinstance(max_len.value, int) or isinstance(max_len.value, bool)
                                or not 1 <= max_len.value <= 100_000):
        errs.add(max_len.pos, "generate: max_len must be a whole number from 1 to 100,000")
        max_len = None
    text = lambda k: None if f.get(k) is None else str(f[k].value)
    return ir.Generate(tuple(feed), max_len.value if max_len else 50, text("start"), text("stop"),
                       pos=node.pos)


def _train(node, errs) -> tuple:
    if node is None:
        return ()
    out = []
    for key, value in _fields(node, "train", tuple(TRAIN_KEYS), errs).items():
        want = TRAIN_KEYS.get(key)
        v = value.value
        ok = (isinstance(v, bool) if want is bool else isinstance(v, str) if want is str else
              isinstance(v, (int, float)) and not isinstance(v, bool) and (want is float or v == int(v)))
        if want is None:
            continue
        if not ok:
            errs.add(value.pos, f"train: {key} must be {_describe(want)}, got {v!r}")
        else:
            out.append((key, want(v)))
    return tuple(out)


def _describe(t) -> str:
    return {bool: "true or false", str: "a name", int: "a whole number", float: "a number"}[t]
