"""Backward program -> the same program with fewer adjoint buffers and no needless sums.

    alias    an adjoint whose only contribution is a copy of another (the adjoint of a sum
             passes through unchanged) becomes that other buffer: no copy, no buffer
    direct   an adjoint with exactly one contribution is written, not accumulated, so it
             needs no zeroing and no temporary (`xp.multiply(a, b, out=d_o[t])`); so is the
             first of several where it covers the whole buffer before anything else touches
             it (an LSTM's d_h: the output layer's share for all steps, then the loop adds)
"""
from __future__ import annotations

from dataclasses import replace

from ..core.ops import Op
from .program import Buf, Instr, Loop, Mode, Ref, instructions


def optimise(backward: list) -> tuple:
    """The rewritten program and the names of adjoints that must start at zero."""
    backward = alias(backward)
    return direct(backward)


def _contributions(backward: list) -> dict:
    counts: dict = {}
    for instr in instructions(backward):
        if instr.target is not None:
            counts[instr.target.buf.name] = counts.get(instr.target.buf.name, 0) + 1
            if instr.target.fill is not None:
                counts[instr.target.fill.name] = counts.get(instr.target.fill.name, 0) + 1
    return counts


def _viewed(backward: list) -> dict:
    """Adjoints that are views or bases of views -> the views of their base."""
    views: dict = {}
    for instr in instructions(backward):
        for r in instr.refs + ([instr.target] if instr.target else []):
            if r.buf.view:
                views.setdefault(r.buf.view[0], {})[r.buf.name] = r.buf
    out = {}
    for base, members in views.items():
        out[base] = list(members.values())
        for name in members:
            out[name] = list(members.values())
    return out


def alias(backward: list) -> list:
    """Drop every copy that is all its target receives and rename the target to the copy's
    source. All such copies are found at once and renamed in one rewrite (a rewrite per copy
    made this quadratic); a round repeats only when dropping copies freed another."""
    while True:
        counts, viewed = _contributions(backward), _viewed(backward)
        pairs = [p for p in (_alias_pair(i, counts, viewed) for i in instructions(backward)) if p]
        if not pairs:
            return backward
        backward = _rewrite(backward, {id(copy) for copy, _ in pairs}, _merged(pairs))


def _alias_pair(instr: Instr, counts: dict, viewed: set):
    """(the copy, (d_Y, d_X)) when `d_Y += d_X` is all d_Y ever receives."""
    if instr.op is not Op.COPY or instr.target is None or not isinstance(instr.args[0], Ref):
        return None
    src, dst = instr.args[0], instr.target
    ok = (src.offset == 0 and dst.offset == 0 and dst.fill is None and counts.get(dst.buf.name) == 1
          and dst.buf.name not in viewed and src.buf.dims == dst.buf.dims and src.buf.axis == dst.buf.axis
          and src.buf.role is dst.buf.role
          and not instr.summed and instr.mode in (Mode.STEP, Mode.SEQ, Mode.STATIC))
    return (instr, (dst.buf.name, src.buf)) if ok else None


def _merged(pairs: list) -> dict:
    """old name -> the buffer it finally becomes, following chains (d_Y <- d_X <- d_W) as
    renaming one copy at a time would; a copy that closes a cycle renames nothing."""
    parent: dict = {}

    def root(buf: Buf) -> Buf:
        path = []
        while buf.name in parent:
            path.append(buf.name)
            buf = parent[buf.name]
        parent.update(dict.fromkeys(path, buf))        # path compression: chains stay linear
        return buf

    for _, (old, new) in pairs:
        new = root(new)
        if new.name != old:
            parent[old] = new
    return {old: root(new) for old, new in list(parent.items())}


def _rewrite(items: list, drop: set, renames: dict) -> list:
    out = []
    for item in items:
        if isinstance(item, Loop):
            out.append(replace(item, body=tuple(_rewrite(list(item.body), drop, renames))))
        elif id(item) not in drop:
            out.append(_swap(item, renames))
    return out


def _swap(instr: Instr, renames: dict) -> Instr:
    """The instruction with renamed buffers (itself when it names none of them)."""
    refs = instr.refs + ([instr.target] if instr.target else [])
    if not any(r.buf.name in renames or (r.fill is not None and r.fill.name in renames) for r in refs) \
            and (instr.target is None or instr.target.buf == instr.out):
        return instr

    def ref(r):
        if not isinstance(r, Ref):
            return r
        return replace(r, buf=renames.get(r.buf.name, r.buf),
                       fill=renames.get(r.fill.name, r.fill) if r.fill is not None else None)
    target = ref(instr.target) if instr.target else None
    return replace(instr, args=tuple(ref(a) for a in instr.args), target=target,
                   out=target.buf if target else instr.out)


def direct(backward: list) -> tuple:
    counts, viewed = _contributions(backward), _viewed(backward)
    single = {name for name, n in counts.items() if n == 1}
    first = _first_whole(backward, counts, viewed)
    written = set()

    def visit(items, axis=None):
        out = []
        for item in items:
            if isinstance(item, Loop):
                out.append(replace(item, body=tuple(visit(item.body, item.axis))))
                continue
            t = item.target
            # in a loop, only an adjoint over the loop's axis takes one contribution per step;
            # one over another axis (attention's d_enc) or none takes one at every step
            if (t is not None and t.buf.name in single and t.offset == 0 and t.fill is None
                    and (axis is None or t.buf.axis == axis)
                    and not _overlaps(t.buf, viewed, counts)) or id(item) in first:
                written.add(t.buf.name)
                item = replace(item, accumulate=False)
            out.append(item)
        return out

    backward = visit(backward)
    return backward, written | _tiled(backward, viewed, counts, written)


def _first_whole(backward: list, counts: dict, viewed: dict) -> set:
    """ids of the first contributions to adjoints with several that come at the top level, for
    all steps at once, before anything else reads or adds into the adjoint (or its base)."""
    touched, first = set(), set()
    for item in backward:
        inner = instructions([item])
        t = item.target if not isinstance(item, Loop) else None
        if (t is not None and item.accumulate and counts.get(t.buf.name, 0) > 1 and t.offset == 0
                and t.fill is None and item.mode in (Mode.SEQ, Mode.STATIC) and t.buf.axis is not None
                and t.buf.base not in touched and not _overlaps(t.buf, viewed, counts)):
            first.add(id(item))
        for i in inner:
            touched |= {r.buf.base for r in i.refs} | {r.fill.base for r in i.refs if r.fill is not None}
            if i.target is not None:
                touched.add(i.target.buf.base)
    return first


def _tiled(backward: list, viewed: dict, counts: dict, written: set) -> set:
    """Bases nothing adds into whose views, each written whole, tile them: they need no
    zeroing either (an LSTM's stacked gate adjoints, a fifth of its backward pass's memory
    traffic)."""
    bufs = {b.name: b for i in instructions(backward)
            for b in [r.buf for r in i.refs] + ([i.target.buf] if i.target else []) + [i.out]}
    out = set()
    for base, views in viewed.items():
        if views[0].view[0] != base or counts.get(base, 0) or base not in bufs or not bufs[base].dims:
            continue                                     # (viewed also maps each view to its kin)
        spans = sorted((v.view[1], v.view[2]) for v in views if v.name in written)
        reach = 0
        for start, stop in spans:
            if start > reach:
                break
            reach = max(reach, stop)
        if reach >= bufs[base].dims[-1]:
            out.add(base)
    return out


def _overlaps(buf: Buf, viewed: dict, counts: dict) -> bool:
    """Whether another contribution may land in the same memory (a base and its views)."""
    if buf.name not in viewed:
        return False
    if buf.view is None:
        return True                                   # a base of views: leave it accumulating
    base, start, stop = buf.view
    if counts.get(base, 0) > 0:
        return True
    return any(other.name != buf.name and other.view[1] < stop and start < other.view[2]
               and counts.get(other.name, 0) > 0 for other in viewed[base])
