"""Forward program -> scheduled program: fusion, the backward pass, the buffer plan.

    fuse       matmuls that share an operand in one phase become one GEMM into a buffer
               whose slices are the original results (views: no copies)
    autodiff   the backward program (autodiff.py)
    plan       which buffers the backward pass reads (the tape), which step buffers hold one
               step only (plan.py), and which adjoints exist
"""
from __future__ import annotations

from . import adjoints, autodiff, fuse
from ..frontend import ir
from .lower import Lowered
from .group import group
from .plan import plan
from .sink import sink
from .program import Program, Role, SinkNote, instructions
from .verify import verify, verify_kernels, verify_live, verify_plan


def schedule(model: ir.Model, low: Lowered, kernels: bool = True) -> Program:
    """`kernels`: the backend runs a kernel as one loop, so work sunk into a loop's kernel is
    free (not so for NumPy, where it is one more call per step)."""
    known = {b.name for b in low.bufs.values() if b.role in (Role.INPUT, Role.PARAM)}
    verify(low.items, known, "lower")
    forward, fusions, views = fuse.fuse(list(low.items))
    verify(forward, known, "fuse")
    tape = known | {i.out.name for i in instructions(forward)} | set(views)
    differentiated = autodiff.differentiate(forward)
    verify(differentiated, tape | _adjoints(differentiated), "autodiff", single_writer=False)
    backward, written = adjoints.optimise(differentiated)
    verify(backward, tape | _adjoints(backward), "adjoints", single_writer=False)
    values = _values(low, forward, views)
    declared = _declared(model)          # once: a set per parameter made this quadratic
    params = tuple(b for b in low.bufs.values() if b.role is Role.PARAM and b.name in declared)
    grads = _grads(backward, params, {b.name: b for b in values}, low.loss)
    verify_live(backward, {autodiff.adjoint(p).name for p in params}, "adjoints")
    outputs = tuple(e.name for e in model.equations)
    forward, sunk = sink(forward, backward, set(outputs)) if kernels else (forward, {})
    sinks = tuple(SinkNote(tuple(n for n in sunk if sunk[n] == loop), loop) for loop in dict.fromkeys(sunk.values()))
    verify(forward, known, "sink")
    planned = plan(forward, backward, values, set(outputs), written)
    verify_plan(forward, backward, planned.scratch, set(planned.tape) | set(outputs))
    forward, backward = group(forward, backward, set(planned.tape) | set(outputs) | {low.loss.name})
    verify_kernels(forward + backward, known | set(planned.tape), "group")
    return Program(tuple(forward), tuple(backward), params=params,
                   inputs=tuple(b for b in low.bufs.values() if b.role is Role.INPUT),
                   values=values, grads=grads, loss=low.loss,
                   zeroed=tuple(g.name for g in grads if g.name not in written),
                   outputs=outputs, notes=tuple(low.notes) + tuple(fusions) + sinks,
                   labels=tuple(low.labels.items()), tape=planned.tape, scratch=planned.scratch)


def _values(low: Lowered, forward: list, views: dict) -> tuple:
    """Every forward buffer: inputs, parameters, results and the views into them (also the
    views nothing reads: a variable is still returned to the user)."""
    seen = dict(views)
    for instr in instructions(forward):          # after fusion: some results are views now
        for buf in [instr.out] + [a.buf for a in instr.refs] + [a.fill for a in instr.refs if a.fill]:
            seen.setdefault(buf.name, buf)
    for b in low.bufs.values():
        seen.setdefault(b.name, b)
    return tuple(seen.values())


def _grads(backward: list, params: tuple, values: dict, loss) -> tuple:
    """Every adjoint the backward pass reads or accumulates (locals excluded), bases of
    views first; every parameter has one, even a parameter the loss does not depend on, and
    so has the loss (the backward pass starts there, even when nothing reads it)."""
    seen = {g.name: g for g in map(autodiff.adjoint, (*params, loss))}
    for instr in instructions(backward):
        refs = instr.refs + ([instr.target] if instr.target else [])
        for buf in [r.buf for r in refs] + [r.fill for r in refs]:
            if buf is not None and buf.of:
                if buf.view:
                    base = autodiff.adjoint(values[values[buf.of].view[0]])
                    seen.setdefault(base.name, base)
                seen.setdefault(buf.name, buf)
    return tuple(sorted(seen.values(), key=lambda b: b.view is not None))


def _declared(model: ir.Model) -> set:
    return {p.name for p in model.params}


def _adjoints(backward: list) -> set:
    """The adjoint buffers a backward program reads or accumulates into: allocated before it
    runs (its locals, the _g temporaries, are not)."""
    names = set()
    for instr in instructions(backward):
        for ref in instr.refs + ([instr.target] if instr.target else []):
            for buf in (ref.buf, ref.fill):
                if buf is not None and buf.role is Role.GRAD and buf.of:
                    names.add(buf.name)
                    if buf.view:
                        names.add(buf.view[0])
    return names
