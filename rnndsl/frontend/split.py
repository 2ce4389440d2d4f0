"""`i, f, o, g = split(z[t], 4)`: one equation per name, before anything is typed.

Each name becomes an ordinary variable over the axis its argument is read at, defined as its
part of the vector, so recurrences through the parts are found as usual. A vector that is not
a variable's step (`split(W @ x[t] + b, 4)`) becomes a variable of its own first (named by
joining the names: `i_f_o_g`), computed once rather than once per part.
"""
from __future__ import annotations

from . import parse
from .declare import poison
from ..core.errors import SpecError
from .typecheck import snippet


def expand_splits(equations: list, axes, names, errs) -> list:
    """`i, f = split(z[t], 2)` becomes one equation per name, each over the axis its argument
    is read at (z's), whose expression is that part of the vector. A vector that is not a
    variable's step (`split(W @ x[t] + b, 2)`) becomes the variable i_f first, so that it is
    computed once, not once per part."""
    out = []
    for eq in equations:
        if not isinstance(eq, parse.SplitEquation):
            out.append(eq)
            continue
        try:
            of, parts = _split_call(eq)
        except SpecError as exc:
            errs.extend(exc)
            for name, _ in eq.names:
                poison(names, name, "var")
            continue
        axis = _free_axis(of, set(axes))
        if not isinstance(of, (parse.Indexed, parse.Name)):      # computed once, as a variable
            whole = "_".join(n for n, _ in eq.names)
            out.append(parse.Equation(eq.pos, whole, axis, of, eq.expr.pos))
            of = parse.Indexed(of.pos, whole, parse.Name(of.pos, axis)) if axis else parse.Name(of.pos, whole)
        out += [parse.Equation(eq.pos, name, axis, parse.SplitPart(eq.expr.pos, of, parts, k), pos)
                for k, (name, pos) in enumerate(eq.names)]
    return out


def _split_call(eq: parse.SplitEquation) -> tuple:
    """(the vector, the number of parts) of `split(z[t], 4)` with as many names on the left."""
    call, count = eq.expr, len(eq.names)
    if not (isinstance(call, parse.Call) and call.fn == "split" and len(call.args) == 2 and not call.kwargs):
        raise SpecError.at(eq.expr.pos, "several names on the left of = take split(vector, count) on the right",
                           f"for example {', '.join(n for n, _ in eq.names)} = split(z[t], {count})")
    n = call.args[1]
    if not (isinstance(n, parse.Num) and n.value == count):
        raise SpecError.at(n.pos, f"split into {count} parts for the {count} names on the left, not {snippet(n.pos)}",
                           f"write split(..., {count})")
    return call.args[0], count


def _free_axis(node, axes: set) -> str | None:
    """The axis a parse tree is read at (`z[t-1]` -> t), outside reductions over it; None if
    static. Several: the first, and the checker reports the mix when it types the parts."""
    found = sorted(_axes_read(node, axes))
    return found[0] if found else None


def _axes_read(node, axes: set) -> set:
    if isinstance(node, parse.Indexed):
        index = [node.lo] + ([node.hi] if node.hi is not None else [])
        return {n.name for i in index for n in _names_in(i) if n.name in axes}
    if isinstance(node, parse.Reduce):
        return _axes_read(node.body, axes) - {node.axis}
    children = [v for v in vars(node).values() if isinstance(v, parse.Node)]
    children += [a for a in getattr(node, "args", ())] + [k[1] for k in getattr(node, "kwargs", ())]
    return set().union(*(_axes_read(c, axes) for c in children))


def _names_in(node) -> list:
    if isinstance(node, parse.Name):
        return [node]
    return [n for v in vars(node).values() if isinstance(v, parse.Node) for n in _names_in(v)]
