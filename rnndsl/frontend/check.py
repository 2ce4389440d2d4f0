"""Located YAML tree -> typed, verified `ir.Model` (the check stage).

Sections are checked one by one, collecting every independent error before raising:
dims, inputs (which declare the time axes), params, equations and state, then the types
of all variables (a fixpoint, since recurrences read variables defined later), the loss,
outputs, generate and train.
"""
from __future__ import annotations

import math
from collections import deque

from . import ir, noise, parse, settings
from .declare import (declare, declare_dims, declare_inputs, declare_params, dim_names, is_name,
                      poison, shape_of, time_axes)
from ..core.errors import Diagnostics, SourcePos, SpecError, did_you_mean
from ..core.ops import SCALAR, Kind, Type, floats
from .settings import TRAIN_KEYS
from .spec import YNode, describe, fields, mapping
from .export import check_export
from .split import expand_splits
from .typecheck import ERROR, HOLE, Entity, Pending, Poisoned, Typer, snippet

GENERATE_KEYS = ("feed", "max_len", "start", "stop", "temperature")
MAX_EQUATIONS = 1_000


def check(tree: YNode, dims: dict | None = None, name: str = "") -> ir.Model:
    """Check a parsed spec; `dims` overrides the spec's dims (as the CLI's --set does)."""
    errs = Diagnostics()
    sections = tree.value
    dim_map = declare_dims(sections.get("dims"), dims or {}, errs, tree)
    names = dim_names(dim_map)
    axes = time_axes(sections.get("inputs"), dim_map)
    inputs = declare_inputs(sections.get("inputs"), dim_map, names, axes, errs)
    params = declare_params(sections.get("params"), dim_map, names, axes, errs)
    equations = _equations(sections, tree, names, axes, errs)
    if equations is None:                 # every later check would only echo that
        errs.check()
    states, init_eqs = _states(sections.get("state"), equations, dim_map, names, errs)
    types = infer_types(equations + init_eqs, names, axes, errs)
    typed = _type_equations(equations + init_eqs, types, names, axes, errs)
    init_params = _check_state_inits(states, typed, types, errs)
    loss = _loss(sections, tree, names, axes, errs)
    outputs = _outputs(sections.get("outputs"), names, errs)
    generate = _generate(sections.get("generate"), inputs, names, errs)
    train = _train(sections.get("train"), errs)
    export = check_export(sections.get("export"), {p.name: p for p in params + init_params}, errs,
                          {n for n, e in names.items() if e.role == "param"})
    title = _text(sections.get("name"), name, "name", errs)
    doc = _text(sections.get("doc"), "", "doc", errs)
    errs.check()
    typed, loss, masks = noise.rewrite(typed, loss)
    return ir.verify(ir.Model(
        name=title, doc=doc, path=tree.pos.path, dims=tuple(dim_map.items()), axes=axes, inputs=tuple(inputs),
        params=tuple(params + init_params), equations=tuple(typed), states=tuple(states),
        loss=loss, outputs=outputs, generate=generate, train=train, masks=masks, export=export))


# ---- small helpers ------------------------------------------------------------------------

def _text(node: YNode | None, default: str, what: str, errs: Diagnostics) -> str:
    if node is None:
        return default
    if not isinstance(node.value, (str, int, float)) or isinstance(node.value, bool):
        errs.add(node.pos, f"{what}: expected text here")
        return default
    return str(node.value)


def _equations(sections, tree, names, axes, errs) -> list | None:
    """The equations that parsed and may be typed (those that did not are reported and their
    names poisoned); None when there are none to check."""
    node = sections.get("equations")
    if node is None:
        errs.add(tree.pos, "the spec has no equations:",
                 "add `equations: |` with lines such as h[t] = tanh(W @ x[t] + U @ h[t-1] + b)")
        return None
    try:
        parsed = parse.parse_equations(node)
    except SpecError as exc:
        errs.extend(exc)
        return None
    for exc in parsed.errors:
        errs.extend(exc)
    if len(parsed.equations) > MAX_EQUATIONS:
        errs.add(node.pos, f"more than {MAX_EQUATIONS} equations", "is this the right file?")
        return None
    for name in parsed.broken:
        poison(names, name, "var")
    kept = []
    for eq in expand_splits(parsed.equations, axes, names, errs):
        problem = _target_axes_problem(eq, axes)
        if problem:
            errs.add(eq.target_pos, problem[0], problem[1])
            poison(names, eq.name, "var")
        elif declare(names, Entity(eq.name, "var", None, eq.axis, eq.target_pos, eq.inner), errs, axes):
            kept.append(eq)
    return kept


def _target_axes_problem(eq, axes) -> tuple | None:
    """(message, hint) when an equation's left side names axes the spec does not have."""
    lhs = f"{eq.name}[{eq.axis}, {eq.inner}]" if eq.inner else f"{eq.name}[{eq.axis}]"
    for axis in (eq.axis, eq.inner):
        if axis is not None and axis not in axes:
            return (f"{lhs}: there is no axis {axis}",
                    f"axes come from the inputs' axis: entries; this spec has {', '.join(axes) or 'none'}")
    if eq.inner is not None and eq.inner == eq.axis:
        return (f"{lhs}: the two axes must differ",
                "attention over one sequence reads it on two axes: declare the input twice, "
                "once with axis: t and once with axis: s")
    return None


def _states(node, equations, dims, names, errs) -> tuple:
    states, init_eqs = [], []
    by_name = {eq.name: eq for eq in equations}
    for var, entry in mapping(node, "state", errs).items():
        f = fields(entry, f"state {var}", ("init", "shape"), "{init: zeros}", errs)
        eq, pos = by_name.get(var), node.key_pos[var]
        if f is None or getattr(names.get(var), "type", None) is ERROR:
            continue                      # its equation did not parse: reported there
        if eq is None or eq.axis is None or (eq.inner is not None and "init" in f):
            errs.add(pos, f"state {var}: no recurrent variable {var}" if eq is None else
                     f"state {var}: {var} is over two axes; before its first step it reads zeros" if eq.inner else
                     f"state {var}: {var} is static; only sequences have states",
                     "give it only a shape: state: {" + var + ": {shape: []}}" if eq and eq.inner else
                     did_you_mean(var, by_name) or "state: names a variable defined as v[t] = ...")
            continue
        shape = shape_of(f.get("shape"), dims, errs)
        if shape is not None:
            names[var] = Entity(var, "var", floats(*shape), eq.axis, eq.target_pos, eq.inner)
        if eq.inner is not None:
            continue                      # a shape only: reads outside give zeros
        state, init_eq = _state_init(var, f.get("init"), pos, names, errs)
        states += [state] if state else []
        init_eqs += [init_eq] if init_eq else []
    return states, init_eqs


def _state_init(var: str, init: YNode | None, pos: SourcePos, names, errs) -> tuple:
    """(State, the init's equation or None), or (None, None) after reporting a mistake."""
    text = init.value if init is not None else "zeros"
    source = f"{var}_init"
    if text == "zeros":
        return ir.State(var, None, False, pos=init.pos if init else pos), None
    if text == "learned":
        if source in names:
            errs.add(pos, f"state {var}: a learned init is the parameter {source}, "
                     f"but {source} is already defined", f"rename {source}")
            return None, None
        return ir.State(var, source, True, pos=init.pos), None
    if not isinstance(text, str):
        errs.add(init.pos, f"state {var}: init must be zeros, learned or an expression",
                 "for example {init: zeros}, or `init: enc[end]` on its own line")
        return None, None
    try:
        expr = parse.parse_expr(init)
    except SpecError as exc:
        errs.extend(exc)
        return None, None
    if isinstance(expr, parse.Name) and expr.name not in names:
        errs.add(expr.pos, f"state {var}: unknown init '{expr.name}'",
                 did_you_mean(expr.name, ["zeros", "learned"] + [n for n, e in names.items()
                                                                 if e.role != "dim"])
                 or "a state init is zeros, learned or an expression such as enc[end]")
        return None, None
    if not declare(names, Entity(source, "var", None, None, init.pos), errs):
        return None, None
    return ir.State(var, source, False, pos=init.pos), parse.Equation(init.pos, source, None, expr, init.pos)


# ---- types ----------------------------------------------------------------------------------

def infer_types(equations, names, axes, errs) -> dict:
    """Every variable's type: first by substitution (variables whose inputs are known), then,
    for recurrences, by guessing from the parts that are known (W @ h[t-1] is [rows of W])."""
    pending = {eq.name: eq for eq in equations}
    for name in list(pending):
        if names[name].type is not None:       # given by state: {shape: ...}
            pending.pop(name)
    failures: dict[str, SpecError] = {}
    while pending:
        progress = _infer_round(pending, names, axes, failures, guess=False)
        if not progress:
            progress = _infer_round(pending, names, axes, failures, guess=True)
        if not progress:
            for eq in pending.values():
                errs.add(eq.target_pos, f"cannot infer the shape of {eq.name}",
                         f"its equation only passes {eq.name} through ops that keep shapes; "
                         f"state the shape: `state: {{{eq.name}: {{shape: [H]}}}}`")
                names[eq.name] = Entity(eq.name, "var", ERROR, eq.axis, eq.target_pos, eq.inner)
            break
    for exc in failures.values():
        errs.extend(exc)
    return {n: e.type for n, e in names.items() if e.role == "var"}


def _infer_round(pending: dict, names, axes, failures: dict, guess: bool) -> bool:
    """Type what can be typed now. An equation waiting for another is tried again when that
    one gets its type (a worklist: a spec written against its dependency order costs one
    pass, not a pass per equation). An equation that fails is reported here, not by the
    strict pass: a recurrence that reads itself would only see its own poisoned type there."""
    progress, waiting, queue = False, {}, deque(pending)
    while queue:
        name = queue.popleft()
        try:
            t = _attempt(pending[name], names, axes, failures, guess)
        except Pending as wait:
            waiting.setdefault(wait.args[0], []).append(name)
            continue
        if t is None or t is HOLE:
            continue
        eq = pending[name]
        names[name] = Entity(name, "var", t, eq.axis, eq.target_pos, eq.inner)
        del pending[name]
        queue.extend(waiting.pop(name, ()))
        progress = True
    return progress


def _attempt(eq, names, axes, failures: dict, guess: bool):
    """The equation's type (ERROR if it fails); raises Pending naming a variable it waits for."""
    try:
        return Typer(names, axes, guess, eq.inner).expr(eq.expr, eq.axis).type
    except Poisoned:
        return ERROR                           # it reads a failed variable; that one is reported
    except SpecError as exc:
        failures[eq.name] = exc
        return ERROR


def _type_equations(equations, types, names, axes, errs) -> list:
    typed = []
    for eq in equations:
        if types.get(eq.name) is ERROR:        # reported (or poisoned) during inference
            continue
        try:
            expr = Typer(names, axes, inner=eq.inner).expr(eq.expr, eq.axis)
        except Poisoned:
            continue
        except SpecError as exc:
            errs.extend(exc)
            continue
        if expr.type != types[eq.name]:
            errs.add(eq.pos, f"{eq.name} is used as {types[eq.name]} but its equation gives {expr.type}",
                     f"check the shapes of the terms in {eq.name}'s equation")
            continue
        problem = _axes_mismatch(eq, expr)
        if problem:
            errs.add(eq.expr.pos, *problem)
            continue
        typed.append(ir.Equation(eq.name, expr.type, eq.axis, expr, snippet(eq.pos), pos=eq.pos, inner=eq.inner))
    return typed


def _axes_mismatch(eq, expr) -> tuple | None:
    """(message, hint) when an equation's value varies over other axes than its left side."""
    lhs = f"{eq.name}[{eq.axis}, {eq.inner}]" if eq.inner else f"{eq.name}[{eq.axis}]" if eq.axis else eq.name
    if expr.inner is not None and eq.inner is None:
        return (f"{lhs} is defined from values over {expr.axis} and {expr.inner}",
                f"reduce over {expr.inner} (sum_{expr.inner} ...), or define {eq.name}[{expr.axis}, {expr.inner}]")
    if eq.inner is not None and (expr.axis, expr.inner) != (eq.axis, eq.inner):
        over = " and ".join(a for a in (expr.axis, expr.inner) if a) or "no axis"
        return (f"{lhs} is defined from values over {over}",
                f"a variable over {eq.axis} and {eq.inner} reads values at both, such as "
                f"q[{eq.axis}] and k[{eq.inner}]; otherwise define {eq.name}[{expr.axis or eq.axis}]")
    if expr.axis is not None and expr.axis != eq.axis:
        return (f"{lhs} is defined from values over {expr.axis}",
                f"write {eq.name}[{expr.axis}] = ..., or reduce: mean_{expr.axis} ...")
    return None


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
    f = fields(node, "generate", GENERATE_KEYS, "{feed: {x: y}, max_len: 50}", errs)
    if f is None:
        return None
    feed_node = f.get("feed")
    entries = mapping(feed_node, "generate: feed", errs) if feed_node else {}
    feed = [pair for inp, out in entries.items()
            if (pair := _feed(inp, out, feed_node.key_pos[inp], inputs, names, errs))]
    max_len = _whole_number(f.get("max_len"), "generate: max_len", 1, 100_000, errs)
    temperature = f.get("temperature")
    if temperature is not None and not (_is_number(temperature.value) and temperature.value >= 0):
        errs.add(temperature.pos, "generate: temperature must be a number, 0 or more",
                 "1 samples from the model's distribution, 0 always takes the likeliest class")
        temperature = None
    return ir.Generate(tuple(feed), max_len or 50, _gen_text(f, "start", errs), _gen_text(f, "stop", errs),
                       float(temperature.value) if temperature is not None else 1.0, pos=node.pos)


def _feed(inp: str, out: YNode, inp_pos: SourcePos, inputs, names, errs) -> tuple | None:
    """One `input: output` pair of generate's feed (x[t] := sample(y[t-1])), or None."""
    by_name = {i.name: i for i in inputs}
    var_names = [n for n, e in names.items() if e.role == "var"]
    src = names.get(out.value) if is_name(out.value) else None
    if ERROR in (getattr(names.get(inp), "type", None), getattr(src, "type", None)):
        return None                       # its own entry was wrong, and is reported
    if inp not in by_name or by_name[inp].axis is None:
        errs.add(inp_pos, f"generate: feed: {inp} is not a sequence input", did_you_mean(inp, by_name))
    elif src is None or src.role != "var" or src.axis is None:
        shown = out.value if isinstance(out.value, (str, int, float)) else describe(out)
        errs.add(out.pos, f"generate: feed: {shown} is not a sequence variable",
                 did_you_mean(str(shown), var_names) or "feed: maps an input to the output sampled into it")
    elif src.type not in (None, ERROR) and not _feeds(src.type, by_name[inp].type):
        want = by_name[inp].type
        takes = f"{want.classes} classes" if want.kind is not Kind.FLOAT else f"vectors {want}"
        errs.add(out.pos, f"generate: feed: {out.value} is {src.type}, but {inp} takes {takes}")
    else:
        return inp, src.name
    return None


def _feeds(out: Type, inp: Type) -> bool:
    """Whether samples of `out` fit input `inp`: scores over its classes, or vectors of its shape."""
    if inp.kind is Kind.FLOAT:
        return out.dims == inp.dims
    return out.dims[-1:] == (inp.classes.value,)


def _gen_text(f: dict, key: str, errs: Diagnostics) -> str | None:
    node = f.get(key)
    if node is None:
        return None
    if isinstance(node.value, bool) or not isinstance(node.value, (str, int)):
        errs.add(node.pos, f"generate: {key} must be a token such as \"<start>\" or a class number")
        return None
    return str(node.value)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole_number(node: YNode | None, what: str, lo: int, hi: int, errs: Diagnostics) -> int | None:
    if node is None:
        return None
    v = node.value
    if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
        errs.add(node.pos, f"{what} must be a whole number from {lo:,} to {hi:,}")
        return None
    return v


def _train(node, errs) -> tuple:
    if node is None:
        return ()
    out = []
    f = fields(node, "train", tuple(TRAIN_KEYS), "{optimizer: adam, lr: 0.001}", errs)
    for key, value in (f or {}).items():
        want = TRAIN_KEYS.get(key)
        if want is None:
            continue
        problem = settings.problem(key, value.value)
        if problem:
            hint = did_you_mean(str(value.value), settings.NAMES[key]) if key in settings.NAMES else ""
            errs.add(value.pos, f"train: {key} must be {problem}, got {value.value!r}"
                     if not isinstance(value.value, (dict, list)) else f"train: {key} must be {problem}", hint)
        else:
            out.append((key, want(value.value)))
    return tuple(out)


