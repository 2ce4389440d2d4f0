"""Forward program -> backward program, by reverse mode over the instructions.

BPTT is nothing special: the adjoint of a loop is a loop in the opposite direction over the
reversed body, carrying the adjoints of the recurrence's values. Each instruction's VJP
comes from the op table and builds instructions, not numbers. Adjoints that do not feed
the loop back (weight gradients, adjoints of hoisted values) are taken out of the reverse
loop and done for all steps at once after it: a weight gradient is one GEMM over T*B rows.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..core.ops import TABLE, Kind, Op, result_rank
from .program import Buf, Instr, Loop, Mode, Ref, Role


@dataclass(frozen=True)
class Node:
    """A contribution being built by a VJP rule: op applied to Refs, floats or Nodes."""
    op: Op
    args: tuple
    attrs: tuple


@dataclass(frozen=True)
class Summed:
    """A parameter's adjoint already summed over batch and time by its op."""
    value: Node


@dataclass(frozen=True)
class Grad:
    """target (an adjoint, at the read's offset, with its fill's adjoint) += tree."""
    tree: object
    target: Ref
    primal: Buf
    summed: bool
    line: str
    inner: str | None = None      # the contribution is built over an inner axis (attention)


def adjoint(buf: Buf) -> Buf:
    view = ("d_" + buf.view[0],) + buf.view[1:] if buf.view else None
    role = Role.PARAM if buf.role is Role.PARAM else Role.GRAD      # PARAM: no batch axes
    return Buf("d_" + buf.name, buf.dims, buf.axis, role, view=view, of=buf.name, inner=buf.inner)


def differentiable(buf: Buf) -> bool:
    return buf.kind is Kind.FLOAT and buf.role in (Role.VALUE, Role.PARAM)


def active(items: list) -> frozenset:
    """The forward buffers that depend on a parameter (activity analysis): only their adjoints
    can reach a gradient. A value made from inputs alone (a masked input, a window of the
    data) gets none, instead of an adjoint that nothing reads. A slice of a fused buffer
    stands for the whole buffer, which errs on the side of an adjoint too many."""
    instrs = [i for item in items for i in (item.body if isinstance(item, Loop) else (item,))]
    found: set = set()

    def is_active(buf: Buf | None) -> bool:
        return buf is not None and (buf.role is Role.PARAM or buf.base in found)
    grew = True
    while grew:                            # a recurrence reads what a later instruction writes
        grew = False
        for i in instrs:
            if i.out.base not in found and any(is_active(a.buf) or is_active(a.fill) for a in i.refs):
                found.add(i.out.base)
                grew = True
    return frozenset(found)


class VJPContext:
    """What a VJP rule sees: the instruction's arguments, output and output adjoint."""

    def __init__(self, instr: Instr):
        self.x = instr.args
        self.y = Ref(instr.out)
        self.dy = Ref(adjoint(instr.out))
        self.attrs = dict(instr.attrs)
        self.ranks = tuple(a.buf.rank if isinstance(a, Ref) else 0 for a in instr.args)
        self.dims = [a.buf.dims if isinstance(a, Ref) else () for a in instr.args]

    def apply(self, op: Op, *args, **attrs) -> Node:
        return Node(op, args, tuple(sorted(attrs.items())))

    def is_param(self, i: int) -> bool:
        a = self.x[i]
        return isinstance(a, Ref) and a.buf.role is Role.PARAM

    def param_sum(self, i: int, node: Node):
        return Summed(node) if self.is_param(i) else node

    def classes(self, i: int) -> int:
        return self.x[i].buf.classes


def differentiate(items: list) -> list:
    """The backward program of a forward program."""
    temps = itertools.count(1)            # temporaries' names depend on the program alone
    live = active(items)
    backward: list = []
    for item in reversed(items):
        if isinstance(item, Loop):
            backward += reverse_loop(item, temps, live)
        else:
            backward += [i for g in grads(item, live) for i in flatten(g, item.mode, temps)]
    return backward


def reverse_loop(loop: Loop, temps, live: frozenset) -> list:
    """The loop run the other way; what does not feed the loop back goes after it, for all
    steps at once."""
    local = {i.out.name for i in loop.body}
    body, after = [], []
    for instr in reversed(loop.body):
        for g in grads(instr, live):
            # attention's contributions are made at each step: over all steps at once they
            # would need (T, S, B, ...) arrays that broadcast against nothing else
            if g.primal.base in local or g.inner:
                body += flatten(g, Mode.STEP, temps)
            else:
                after += flatten(g, Mode.SEQ, temps)
    reversed_loop = [Loop(loop.axis, not loop.reverse, tuple(body), loop.members, truncate=True)] if body else []
    return reversed_loop + after


def grads(instr: Instr, live: frozenset) -> list:
    """The contributions of one instruction to the adjoints of its active arguments."""
    wanted = lambda buf: differentiable(buf) and (buf.role is Role.PARAM or buf.base in live)
    if not wanted(instr.out) or TABLE[instr.op].vjp is None:
        return []
    out = []
    for arg, contribution in zip(instr.args, TABLE[instr.op].vjp(VJPContext(instr))):
        if contribution is None or not isinstance(arg, Ref) or not wanted(arg.buf):
            continue
        summed = isinstance(contribution, Summed)
        fill = adjoint(arg.fill) if arg.fill is not None and wanted(arg.fill) else None
        tree = contribution.value if summed else contribution
        inner = instr.out.inner or next((a.buf.inner for a in instr.refs if a.buf.inner), None)
        if inner and not summed and not arg.buf.inner and arg.buf.axis != inner:
            tree = Node(Op.SUM_INNER, (tree,), ())        # broadcast over the inner axis: summed back
        out.append(Grad(tree, Ref(adjoint(arg.buf), arg.offset, fill), arg.buf, summed, instr.line, inner))
    return out


def flatten(grad: Grad, mode: Mode, temps) -> list:
    """A contribution as instructions: temporaries (locals, named from the counter `temps`),
    then the += into the adjoint."""
    out: list = []

    def visit(node):
        if not isinstance(node, Node):
            return node
        args = tuple(visit(a) for a in node.args)
        rank = result_rank(node.op, tuple(a.buf.rank if isinstance(a, Ref) else 0 for a in args), dict(node.attrs))
        inner = None if node.op is Op.SUM_INNER else grad.inner      # a local: sizes not planned
        tmp = Buf(f"_g{next(temps)}", (None,) * rank, None, Role.GRAD, inner=inner)
        out.append(Instr(tmp, node.op, args, mode, node.attrs, line=grad.line))
        return Ref(tmp)

    tree = grad.tree
    if isinstance(tree, Node):
        op, args, attrs = tree.op, tuple(visit(a) for a in tree.args), tree.attrs
    else:
        op, args, attrs = Op.COPY, (tree,), ()
    out.append(Instr(grad.target.buf, op, args, mode, attrs, accumulate=True, line=grad.line,
                     target=grad.target, summed=grad.summed))
    return out
