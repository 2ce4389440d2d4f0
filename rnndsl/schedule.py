"""Forward program -> scheduled program: fusion, the backward pass, the buffer plan.

    fuse       matmuls that share an operand in one phase become one GEMM into a buffer
               whose slices are the original results (views: no copies)
    autodiff   the backward program (autodiff.py)
    plan       which buffers the backward pass reads (the tape) and which adjoints exist
"""
from __future__ import annotations

from . import autodiff, ir
from .lower import Lowered
from .program import Buf, Instr, Loop, Program, Ref, Role, instructions


def schedule(model: ir.Model, low: Lowered) -> Program:
    forward = list(low.items)
    backward = autodiff.differentiate(forward)
    values = _values(low, forward)
    params = tuple(b for b in low.bufs.values() if b.role is Role.PARAM)
    grads = _grads(backward, params)
    return Program(tuple(forward), tuple(backward), params=params,
                   inputs=tuple(b for b in low.bufs.values() if b.role is Role.INPUT),
                   values=values, grads=grads, loss=low.loss,
                   outputs=tuple(e.name for e in model.equations), notes=tuple(low.notes))


def _values(low: Lowered, forward: list) -> tuple:
    seen = dict((b.name, b) for b in low.bufs.values())
    for instr in instructions(forward):
        seen.setdefault(instr.out.name, instr.out)
    return tuple(seen.values())


def _grads(backward: list, params: tuple) -> tuple:
    """Every adjoint the backward pass reads or accumulates (locals excluded); every
    parameter has one, even a parameter the loss does not depend on."""
    seen = {"d_" + p.name: autodiff.adjoint(p) for p in params}
    for instr in instructions(backward):
        refs = instr.refs + ([instr.target] if instr.target else [])
        for buf in [r.buf for r in refs] + [r.fill for r in refs]:
            if buf is not None and buf.name.startswith("d_"):
                seen.setdefault(buf.name, buf)
    return tuple(seen.values())
