"""Fusion over the forward program: fewer, larger operations.

    matmuls    products of parameters with one shared operand, in one phase (the hoisted
               part or one loop body), become one GEMM with the weights stacked; the old
               results become views (slices) of the new buffer, so nothing is copied.
               The four LSTM gate products on x[t] become one; those on h[t-1] another.
    elementwise  the same op applied to adjacent slices of one buffer (and, position by
               position, to parameters or equal constants) becomes one call over the union:
               the gate biases are added once, the three sigmoid gates take one call.

A phase is the top level (everything hoisted) or one loop body. Adjoints of views are views
of the adjoint, so the backward pass inherits the fusion.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import replace

from .ops import Op, elementwise
from .program import Buf, Instr, Loop, Mode, Ref, Role

_names = itertools.count(1)
_BASES: dict = {}           # every result of the program being fused, by name
VIEWS: dict = {}            # every result turned into a view, by name (read or not)
# Caches for one fuse() call, by id with the object kept alive: a round of elementwise fusion
# then skips what cannot change, so it costs what it fuses, not the whole program again.
_SETTLED: dict = {}         # (rule, id(loop)) -> loop: the rule fused nothing in its body
_NAMES_IN: dict = {}        # id(loop) -> (loop, every buffer name its body mentions)
_RESULTS: dict = {}         # id(loop) -> (loop, {name: Buf} of its body's results)
_SIGNATURES: dict = {}      # id(instr) -> (instr, its signature)


def fuse(items: list) -> tuple:
    """The fused program and a note per fusion (for --explain)."""
    global _names
    _names = itertools.count(1)           # names depend on the spec alone, not on history
    VIEWS.clear()
    _SETTLED.clear()
    _NAMES_IN.clear()
    _RESULTS.clear()
    _SIGNATURES.clear()
    notes: list = []
    items = _fuse_all(items, _fuse_matmuls, notes)
    while True:
        before = len(notes)
        items = _fuse_all(items, _fuse_elementwise, notes)
        if len(notes) == before:
            return items, notes, dict(VIEWS)


def _fuse_all(items: list, rule, notes: list) -> list:
    """Apply `rule` to the top level (loops are opaque there) and to each loop body; fused
    results are renamed to views everywhere; stacked weights go first."""
    renames: dict = {}
    prologue: list = []
    _BASES.clear()
    _BASES.update(_results(items))
    top = rule(list(items), renames, prologue, notes, None)
    _BASES.update(_results(top + prologue))
    top = [_fuse_loop(i, rule, renames, prologue, notes) if isinstance(i, Loop) else i for i in top]
    VIEWS.update(renames)
    return [_rename(i, renames) for i in prologue + top]


def _fuse_loop(loop: Loop, rule, renames: dict, prologue: list, notes: list) -> Loop:
    """`rule` applied to a loop's body. A body where it fused nothing, and that no rename has
    reached since, is not scanned again: the rule would find nothing again."""
    if (rule, id(loop)) in _SETTLED and _names_in(loop).isdisjoint(renames):
        return loop
    body = tuple(rule(list(loop.body), renames, prologue, notes, loop))
    if len(body) == len(loop.body) and all(map(operator.is_, body, loop.body)):
        _SETTLED[rule, id(loop)] = loop
        return loop
    return replace(loop, body=body)


def _names_in(loop: Loop) -> frozenset:
    seen = _NAMES_IN.get(id(loop))
    if seen is None or seen[0] is not loop:
        names = {n for i in loop.body for n in [i.out.name] + [r.buf.name for r in i.refs]
                 + [r.fill.name for r in i.refs if r.fill is not None]}
        seen = _NAMES_IN[id(loop)] = (loop, frozenset(names))
    return seen[1]


def _rename(item, renames: dict):
    if not _renamed(item, renames):
        return item                    # unchanged: fusion renames a few names in a large program
    if isinstance(item, Loop):
        return replace(item, body=tuple(_rename(i, renames) for i in item.body))
    swap = lambda r: replace(r, buf=renames.get(r.buf.name, r.buf),
                             fill=renames.get(r.fill.name, r.fill) if r.fill else None) if isinstance(r, Ref) else r
    return replace(item, out=renames.get(item.out.name, item.out), args=tuple(swap(a) for a in item.args))


def _renamed(item, renames: dict) -> bool:
    """Whether `item` names a buffer in `renames` (its result, an argument or a fill)."""
    if not renames:
        return False
    if isinstance(item, Loop):
        return not _names_in(item).isdisjoint(renames)
    return item.out.name in renames or any(
        isinstance(a, Ref) and (a.buf.name in renames or (a.fill is not None and a.fill.name in renames))
        for a in item.args)


def _declared_param(buf: Buf) -> bool:
    """A parameter of the spec (stacked before anything runs), not a value computed from
    parameters, which exists only once its instruction has run."""
    return buf.role is Role.PARAM and buf.name not in _BASES


def _results(items: list) -> dict:
    """name -> Buf of every result (the last writer's), loop bodies included."""
    out: dict = {}
    for item in items:
        if isinstance(item, Loop):
            out.update(_loop_results(item))
        else:
            out[item.out.name] = item.out
    return out


def _loop_results(loop: Loop) -> dict:
    seen = _RESULTS.get(id(loop))
    if seen is None or seen[0] is not loop:
        seen = _RESULTS[id(loop)] = (loop, {i.out.name: i.out for i in loop.body})
    return seen[1]


def _produced(phase: list) -> dict:
    """name -> position in the phase of what writes it (a loop writes its body's outputs)."""
    made: dict = {}
    for k, item in enumerate(phase):
        if isinstance(item, Loop):
            made.update(dict.fromkeys(_loop_results(item).keys() - made.keys(), k))
        else:
            made.setdefault(item.out.name, k)
    return made


def _matmul_key(instr: Instr):
    if instr.op not in (Op.MATMUL, Op.EMBED) or instr.accumulate or instr.out.view:
        return None
    w, x = instr.args
    if not (isinstance(w, Ref) and _declared_param(w.buf) and w.buf.rank == 2 and isinstance(x, Ref)):
        return None
    if instr.op is Op.MATMUL and x.buf.rank != 1:
        return None
    return instr.op, x, instr.mode


def _fuse_matmuls(phase: list, renames: dict, prologue: list, notes: list, loop) -> list:
    groups: dict = {}
    for instr in phase:
        key = _matmul_key(instr) if isinstance(instr, Instr) else None
        if key is not None:
            groups.setdefault(key, []).append(instr)
    replaced = {}
    for (op, x, mode), members in groups.items():
        if len(members) < 2:
            continue
        n = next(_names)
        weights = [m.args[0].buf for m in members]
        rows = sum(w.dims[0] for w in weights)
        w_cat = Buf(f"_w{n}", (rows,) + weights[0].dims[1:], None, Role.PARAM)
        prologue.append(Instr(w_cat, Op.CONCAT, tuple(Ref(w) for w in weights), Mode.PARAM,
                              line="stacked weights: " + ", ".join(w.name for w in weights)))
        z = Buf(f"_z{n}", (rows,), members[0].out.axis, Role.VALUE)
        start = 0
        for m in members:
            size = m.out.dims[0]
            renames[m.out.name] = replace(m.out, view=(z.name, start, start + size))
            start += size
        replaced[id(members[0])] = Instr(z, op, (Ref(w_cat), x), mode, line=members[0].line)
        for m in members[1:]:
            replaced[id(m)] = None
        notes.append(("matmul", [w.name for w in weights], str(x), mode.value, loop.members if loop else (),
                      w_cat.name))
    return [replaced.get(id(i), i) for i in phase if replaced.get(id(i), i) is not None]


def _fuse_elementwise(phase: list, renames: dict, prologue: list, notes: list, loop) -> list:
    phase = [_rename(i, renames) for i in phase]
    made = _produced(phase)
    groups: dict = {}
    for k, instr in enumerate(phase):
        sig = _cached_signature(instr) if isinstance(instr, Instr) else None
        if sig is not None:
            groups.setdefault(sig, []).append((k, instr))
    for sig, members in groups.items():
        for run in _adjacent_runs(members):
            first = min(k for k, _ in run)
            bases = [a.buf.view[0] for _, i in run[:1] for a in i.args if isinstance(a, Ref) and a.buf.view]
            if any(made.get(b, -1) >= first for b in bases):
                continue
            return _apply_run(phase, run, renames, prologue, notes, loop)
    return phase


def _cached_signature(instr: Instr):
    """_signature, computed once per instruction object (instructions are immutable)."""
    seen = _SIGNATURES.get(id(instr))
    if seen is None or seen[0] is not instr:
        seen = _SIGNATURES[id(instr)] = (instr, _signature(instr))
    return seen[1]


def _signature(instr: Instr):
    """What must agree for instructions to fuse: op, attrs, mode, and per argument
    whether it is a slice of some buffer (and which), a parameter, or a constant."""
    if instr.accumulate or not elementwise(instr.op) or instr.op is Op.COPY:
        return None
    if instr.out.view or instr.out.rank != 1 or instr.out.dims is None:
        return None
    parts = []
    for a in instr.args:
        if isinstance(a, float):
            parts.append(("const", a))
        elif a.buf.view and a.fill is None:
            parts.append(("view", a.buf.view[0], a.offset))
        elif _declared_param(a.buf) and a.buf.rank == 1:
            parts.append(("param",))
        else:
            return None
    if not any(p[0] == "view" for p in parts):
        return None
    return instr.op, instr.attrs, instr.mode, instr.out.axis, tuple(parts)


def _adjacent_runs(members: list) -> list:
    """Maximal runs (of two or more) whose slices follow each other in every argument."""
    def starts(instr):
        return [a.buf.view[1:] for a in instr.args if isinstance(a, Ref) and a.buf.view]
    ordered = sorted(members, key=lambda m: starts(m[1])[0][0])
    runs, run = [], [ordered[0]]
    for prev, cur in zip(ordered, ordered[1:]):
        ok = all(p[1] == c[0] and (c[1] - c[0]) == cur[1].out.dims[0]
                 for p, c in zip(starts(prev[1]), starts(cur[1])))
        if ok:
            run.append(cur)
        else:
            runs.append(run)
            run = [cur]
    runs.append(run)
    return [r for r in runs if len(r) >= 2]


def _slice_of(buf: Buf, size: int, bases: dict) -> Buf:
    """The buffer for `size` entries of buf's base from buf's start: the base itself when
    that is all of it."""
    base, start = buf.view[0], buf.view[1]
    whole = bases.get(base)
    if whole is not None and start == 0 and whole.dims == (size,):
        return whole
    return Buf(f"{base}_{start}_{start + size}", (size,), buf.axis, buf.role, view=(base, start, start + size))


def _apply_run(phase: list, run: list, renames: dict, prologue: list, notes: list, loop) -> list:
    n = next(_names)
    bases = {**_BASES, **_results(phase + prologue)}
    instrs = [i for _, i in run]
    size = sum(i.out.dims[0] for i in instrs)
    args = []
    for pos, a in enumerate(instrs[0].args):
        if isinstance(a, float):
            args.append(a)
        elif a.buf.view:
            args.append(Ref(_slice_of(a.buf, size, bases), a.offset))
        else:
            p_cat = Buf(f"_p{n}_{pos}", (size,), None, Role.PARAM)
            prologue.append(Instr(p_cat, Op.CONCAT, tuple(i.args[pos] for i in instrs), Mode.PARAM,
                                  line="stacked: " + ", ".join(i.args[pos].buf.name for i in instrs)))
            args.append(Ref(p_cat))
    out = Buf(f"_e{n}", (size,), instrs[0].out.axis, Role.VALUE)
    start = 0
    for i in instrs:
        renames[i.out.name] = replace(i.out, view=(out.name, start, start + i.out.dims[0]))
        start += i.out.dims[0]
    fused = Instr(out, instrs[0].op, tuple(args), instrs[0].mode, instrs[0].attrs, line=instrs[0].line)
    first = min(k for k, _ in run)
    drop = {k for k, _ in run}
    notes.append(("elementwise", instrs[0].op.value, [i.out.name for i in instrs], instrs[0].mode.value,
                  loop.members if loop else ()))
    return [fused if k == first else i for k, i in enumerate(phase) if k == first or k not in drop]
