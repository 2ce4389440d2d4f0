"""The tape and the step scratch: which forward buffers outlive the forward pass.

    tape      the backward pass's live-in set: every forward buffer it reads (a view counts
              as itself; it keeps its base alive). forward() returns these, the user's values
              and nothing else, so the rest is freed when it returns.
    scratch   a buffer written step by step that nothing reads at another step, after the
              loop, or in the backward pass (an LSTM's gate pre-activations): it holds one step,
              (B, ...), instead of all of them, (T, B, ...). So does an adjoint written whole
              at each step of one backward loop and read only there, at that step (an LSTM's
              d_i, d_f, d_o, d_g before they make the gates' adjoint; at T=100, B=32, H=256
              the backward pass's arrays shrink from 38 to 23 MiB).
"""
from __future__ import annotations

from dataclasses import dataclass

from .program import Buf, Loop, Mode, Ref, Role, instructions


@dataclass(frozen=True)
class Plan:
    tape: tuple          # names, sorted
    scratch: tuple       # names of base buffers (their views follow them)


def plan(forward: list, backward: list, values: tuple, keep: set, written: set = frozenset()) -> Plan:
    """`keep`: names the caller needs after forward() whatever the backward pass reads (the
    equations' values, returned to the user); `written`: adjoints written, not accumulated
    (they need no zeros, so one step of them can be reused step after step)."""
    bufs = {b.name: b for b in values}
    tape = _live_in(backward, bufs)
    scratch = _scratch(forward, bufs, tape | set(keep)) | _step_adjoints(backward, written)
    return Plan(tuple(sorted(tape)), tuple(sorted(scratch)))


def _live_in(backward: list, bufs: dict) -> set:
    """Forward buffers the backward pass reads: arguments and the fills of reads, and the base
    of each view among them (it is kept alive anyway; a kernel backend reads a view through
    its base, whose rows are contiguous)."""
    names = set()
    for instr in instructions(backward):
        for ref in instr.refs:
            for buf in (ref.buf, ref.fill):
                if buf is not None and buf.role is not Role.GRAD and not buf.of and buf.name in bufs:
                    names.add(buf.name)
                    if buf.view and buf.view[0] in bufs:
                        names.add(buf.view[0])
    return names


def _scratch(forward: list, bufs: dict, needed: set) -> set:
    """Base buffers written in a loop whose every read (through any view) is in that loop's
    body at offset 0, and which no one needs after the forward pass."""
    written: dict = {}          # base -> the loop writing it (None: written outside loops)
    for item in forward:
        for instr in item.body if isinstance(item, Loop) else [item]:
            loop = item if isinstance(item, Loop) and instr.mode is Mode.STEP else None
            written.setdefault(instr.out.base, set()).add(id(loop) if loop else None)
    candidates = {b for b, loops in written.items() if len(loops) == 1 and None not in loops}
    for item in forward:
        for instr in item.body if isinstance(item, Loop) else [item]:
            inside = id(item) if isinstance(item, Loop) else None
            for ref in instr.refs:
                for buf, offset in ((ref.buf, ref.offset), (ref.fill, 0)):
                    if buf is not None and (offset != 0 or inside not in written.get(buf.base, {None})):
                        candidates.discard(buf.base)
    blocked = {bufs[n].base for n in needed if n in bufs} | needed
    return {b for b in candidates if b not in blocked}


def _step_adjoints(backward: list, written: set) -> set:
    """Adjoint bases written (never accumulated) only in one backward loop, at the step
    itself, and read only inside that loop at that step."""
    loops: dict = {}            # base -> ids of the items writing it (a loop, or top level)
    spoiled = set()
    for item in backward:
        for instr in instructions([item]):
            target = instr.target or Ref(instr.out)
            b = target.buf.base
            if target.buf.role is not Role.GRAD or not target.buf.of:
                continue
            loops.setdefault(b, set()).add(id(item) if isinstance(item, Loop) and instr.mode is Mode.STEP else None)
            if target.offset or (target.buf.name not in written and b not in written):
                spoiled.add(b)
    candidates = {b for b, ids in loops.items() if len(ids) == 1 and None not in ids} - spoiled
    for item in backward:
        inside = id(item) if isinstance(item, Loop) else None
        for instr in instructions([item]):
            for ref in instr.refs:
                if ref.buf.base in candidates and (ref.offset or inside not in loops[ref.buf.base]):
                    candidates.discard(ref.buf.base)
                if ref.fill is not None:
                    candidates.discard(ref.fill.base)
    return candidates


def nbytes(bufs: dict, names, steps: int, batch: int, itemsize: int, scratch=()) -> int:
    """The bytes the named buffers (name -> Buf in `bufs`) hold at T=steps, B=batch; a view
    counts as its base, once; `scratch` buffers hold one step."""
    bases = {bufs[n].base for n in names if n in bufs}
    return itemsize * sum(_size(bufs[b], steps, batch, b in scratch) for b in bases if b in bufs)


def _size(buf: Buf, steps: int, batch: int, scratch: bool) -> int:
    n = 1
    for d in buf.dims:
        n *= d
    if buf.role is Role.PARAM:
        return n
    return n * batch * (steps if buf.axis and not scratch else 1)
