"""Typed IR -> what does not reach the loss: a warning for each parameter that training can
never change and each equation whose value nothing uses (not the loss, an output or
generation). `rnndsl check` prints them; `check --strict` makes them errors.

A parameter or variable reaches the loss when the loss reads it, or reads a variable whose
equation (or state init) reads it, and so on; a state's learned init is used when its state is.
"""
from __future__ import annotations

from ..frontend import ir
from ..core.errors import Diagnostic
from .timegraph import reads


def unused(model: ir.Model) -> list:
    """Warnings (Diagnostic, severity "warning") in spec order."""
    trained = _reached(model, _names_in(model.loss))
    used = _reached(model, _names_in(model.loss) | set(model.outputs) | _fed(model))
    inits = {s.source for s in model.states if s.source}      # reported with their state, if at all
    out = [Diagnostic(p.pos, f"parameter {p.name} does not reach the loss: training never changes it",
                      "use it in an equation the loss depends on, or remove it", "warning")
           for p in model.params if p.name not in trained and p.name not in inits]
    out += [Diagnostic(eq.pos, f"{eq.name} is computed but nothing uses it (not the loss, an output "
                       "or generation)", "use it, list it in outputs:, or remove the equation", "warning")
            for eq in model.equations if eq.name not in used and eq.name not in inits]
    return sorted(out, key=lambda d: (d.pos.line, d.pos.col) if d.pos else (0, 0))


def _reached(model: ir.Model, roots: set) -> set:
    """Every name the roots depend on, through equations and state inits."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        item = model.lookup(name)
        if isinstance(item, ir.Equation):
            todo += _names_in(item.expr)
        state = model.state(name)
        if state is not None and state.source:
            todo.append(state.source)
    return seen


def _names_in(expr: ir.Expr) -> set:
    return {name for name, _, _ in reads(expr)}


def _fed(model: ir.Model) -> set:
    """The outputs generation feeds back as inputs."""
    gen = model.generate
    return {source for _, source in gen.feed} if gen is not None and gen.feed else set()

