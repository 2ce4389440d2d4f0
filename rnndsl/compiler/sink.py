"""Forward program -> the same, with elementwise work only one loop reads moved into it.

Lowering hoists every time-parallel value out of a recurrence's loop and computes it for all
steps at once; for a GEMM that is the point (one large product), but an elementwise value that
only the loop reads (an LSTM's `W @ x[t] + b`, the bias added to the hoisted product) then makes
a pass over a (T, B, ...) array that the loop's kernel could have folded in for free. Such an
instruction moves into the loop, just before its first reader, so that grouping puts it into
the step's kernel and the planner keeps one step of it. Only after autodiff: the backward
program, derived from the hoisted form, does not read it (else it stays).
"""
from __future__ import annotations

from dataclasses import replace

from .group import fusable
from .program import Instr, Loop, Mode, Role, instructions


def sink(forward: list, backward: list, keep: set) -> tuple:
    """(the forward program, {moved name: the members of the loop it went into}); `keep`:
    names read after the passes (the user's values): those stay whole."""
    outside = keep | {r.buf.base for i in instructions(backward) for r in i.refs}
    places = _readers(forward)
    moves = {}
    for n, item in enumerate(forward):
        if isinstance(item, Instr) and _movable(item, forward, places, outside):
            moves[n] = places[item.out.base][0]
    if not moves:
        return forward, {}
    moved = {id(forward[n]): forward[n] for n in moves}
    into = {}
    for n, loop_index in moves.items():
        into.setdefault(loop_index, []).append(forward[n])
    out = []
    for n, item in enumerate(forward):
        if id(item) in moved:
            continue
        out.append(_insert(item, into[n]) if n in into else item)
    return out, {forward[n].out.name: forward[loop].members for n, loop in moves.items()}


def _readers(forward: list) -> dict:
    """base name -> the positions (top-level index) of every item reading it, and how."""
    places: dict = {}
    for n, item in enumerate(forward):
        for instr in item.body if isinstance(item, Loop) else (item,):
            for ref in instr.refs:
                for buf, offset in ((ref.buf, ref.offset), (ref.fill, 1)):
                    if buf is not None:
                        places.setdefault(buf.base, []).append(
                            n if isinstance(item, Loop) and offset == 0 else -1)
    return places


def _movable(instr: Instr, forward: list, places: dict, outside: set) -> bool:
    name = instr.out.base
    where = set(places.get(name, []))
    if instr.mode is not Mode.SEQ or not fusable(instr) or instr.target is not None or instr.out.view:
        return False
    if name in outside or len(where) != 1 or -1 in where:
        return False                                   # read after the passes, or not by one loop
    loop = forward[next(iter(where))]
    written = {i.out.base for i in loop.body}
    return all(r.offset == 0 and r.fill is None and r.buf.base not in written
               and (r.buf.role is Role.PARAM or r.buf.axis == loop.axis) for r in instr.refs)


def _insert(loop: Loop, instrs: list) -> Loop:
    """The loop with each instruction (as a step) just before the first item reading it."""
    body = list(loop.body)
    for instr in instrs:
        step = replace(instr, mode=Mode.STEP)
        first = next(k for k, i in enumerate(body) if any(r.buf.base == instr.out.base for r in i.refs))
        body.insert(first, step)
    return replace(loop, body=tuple(body))
