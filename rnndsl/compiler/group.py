"""Program -> the same program with runs of elementwise instructions grouped into kernels.

A run is a maximal sequence of consecutive instructions of one phase (a loop body, or the
part between loops) that are all elementwise, in one mode, over float vectors or scalars,
and that write their whole result or add into an adjoint (in a loop also at another step,
d_c[t-1] += ..., where the whole step takes it or not; at a later step, each row whose
sequence has not ended). A single such
instruction is a kernel too (a kernel backend's loop beats NumPy's float32 tanh). Program order
is kept, so a kernel needs no scheduling: each batch row goes through the members in turn.
A backend renders a kernel as one compiled loop (numba, CUDA) or runs its members one by
one (NumPy). `outputs` are the members' results anything outside the kernel reads: the
rest may live in registers.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

from ..core.ops import Kind, Op, elementwise, result_rank
from .program import Instr, Kernel, Loop, Mode, Ref, Role, instructions

MODES = (Mode.STEP, Mode.SEQ, Mode.STATIC)


def group(forward: list, backward: list, keep: set) -> tuple:
    """(forward, backward) with kernels; `keep`: names read after the passes (the tape, the
    user's values, the loss)."""
    counter = itertools.count(1)
    reads = _reads_by_instr(forward + backward)
    forward = _group_items(forward, reads, keep, counter)
    backward = _group_items(backward, reads, keep, counter)
    names = itertools.count(1)                # numbered in program order, loops in place
    return _renamed(forward, names), _renamed(backward, names)


def _renamed(items: list, names) -> list:
    out = []
    for item in items:
        if isinstance(item, Kernel):
            item = replace(item, name=f"_k{next(names)}")
        elif isinstance(item, Loop):
            item = replace(item, body=tuple(_renamed(list(item.body), names)))
        out.append(item)
    return out


def fusable(instr: Instr) -> bool:
    if not (elementwise(instr.op) and instr.op is not Op.COPY and instr.mode in MODES):
        return False
    bufs = [instr.out] + [r.buf for r in instr.refs] + [r.fill for r in instr.refs if r.fill is not None]
    if any(b.dims is None or None in b.dims or b.rank > 1 or b.kind is not Kind.FLOAT or b.inner for b in bufs):
        return False                  # a value over two axes (attention) is not one row per example
    if len({b.axis for b in bufs if b.axis}) > 1:
        return False                  # a sequence over another axis, read whole at each step
    rank = result_rank(instr.op, tuple(r.buf.rank if isinstance(r, Ref) else 0 for r in instr.args), instr.attr)
    t = instr.target
    if t is None:
        return not instr.accumulate and rank == instr.out.rank
    same_shape = t.buf.rank == rank and (t.buf.axis is None) == (instr.mode is Mode.STATIC)
    # an adjoint at another step of a loop (d_c[t-1] += ...): taken or not for the whole step
    # (at a later step, d_c[t+1] += ..., also row by row: rows whose sequence ended are not)
    shift_ok = t.offset == 0 or instr.mode is Mode.STEP
    return (shift_ok and t.fill is None and not instr.summed and same_shape and t.buf.role is not Role.PARAM)


def _group_items(items: list, reads: dict, keep: set, counter) -> list:
    out = []
    for item in items:
        if isinstance(item, Loop):
            body = tuple(_group_phase(list(item.body), reads, keep, counter))
            out.append(Loop(item.axis, item.reverse, body, item.members, item.truncate))
        else:
            out.append(item)
    return _group_phase(out, reads, keep, counter)


def _group_phase(items: list, reads: dict, keep: set, counter) -> list:
    out, run = [], []
    for item in items + [None]:
        if isinstance(item, Instr) and fusable(item) and (not run or _joins(run, item)):
            run.append(item)
            continue
        out += [_kernel(run, reads, keep, counter)] if run else []
        run = [item] if isinstance(item, Instr) and fusable(item) else []
        if item is not None and not run:
            out.append(item)
    return out


def _joins(run: list, instr: Instr) -> bool:
    """`instr` may follow `run` in one kernel: the same mode, and no read of another time step
    of something the run writes, unless that step is done before the kernel starts (a loop's
    earlier steps): for all steps at once, the whole array is still being written."""
    if instr.mode is not run[0].mode:
        return False
    if instr.mode is Mode.STEP:
        return True
    written = {(i.target.buf if i.target is not None else i.out).base for i in run}
    return not any(r.offset and r.buf.base in written for r in instr.refs)


def _kernel(run: list, readers: dict, keep: set, counter) -> Kernel:
    inside = {id(i) for i in run}
    outputs = []
    for instr in run:
        buf = instr.target.buf if instr.target is not None else instr.out
        names = {buf.name, buf.base}
        added = instr.target is not None and (instr.accumulate or instr.target.offset)    # into what is there
        if added or names & keep or any(readers.get(n, set()) - inside for n in names):
            outputs.append(buf.name)
    return Kernel(f"_k{next(counter)}", tuple(run), tuple(dict.fromkeys(outputs)))


def _reads_by_instr(items: list) -> dict:
    """buffer name -> ids of the instructions reading it (a view is read as its base too)."""
    readers: dict = {}
    for instr in instructions(items):
        for ref in instr.refs:
            for buf in (ref.buf, ref.fill):
                if buf is not None:
                    for name in {buf.name, buf.base}:
                        readers.setdefault(name, set()).add(id(instr))
    return readers
