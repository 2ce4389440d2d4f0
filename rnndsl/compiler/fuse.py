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

from ..core.ops import Op, elementwise
from .program import Buf, GroupNote, Instr, Loop, Mode, Ref, Role, StackNote, instructions

def fuse(items: list) -> tuple:
    """The fused program, a note per fusion (for --explain) and the results made views."""
    return _Fusion().run(items)


class _Fusion:
    """The state of one fuse() call: the names it has handed out, the program's results and
    the results turned into views; and caches by id (the object kept alive, as instructions
    are immutable), so that a round of elementwise fusion skips what cannot change and costs
    what it fuses, not the whole program again."""

    def __init__(self):
        self.names = itertools.count(1)      # names depend on the spec alone, not on history
        self.bases: dict = {}                # every result of the program being fused, by name
        self.views: dict = {}                # every result turned into a view, by name (read or not)
        self.settled: dict = {}              # (rule, id(loop)) -> loop: the rule fused nothing in its body
        self.names_in_loop: dict = {}        # id(loop) -> (loop, every buffer name its body mentions)
        self.loop_results: dict = {}         # id(loop) -> (loop, {name: Buf} of its body's results)
        self.signatures: dict = {}           # id(instr) -> (instr, its signature)

    def run(self, items: list) -> tuple:
        notes: list = []
        items = self.fuse_all(items, self.fuse_matmuls, notes)
        while True:
            before = len(notes)
            items = self.fuse_all(items, self.fuse_elementwise, notes)
            if len(notes) == before:
                return items, notes, dict(self.views)

    def fuse_all(self, items: list, rule, notes: list) -> list:
        """Apply `rule` to the top level (loops are opaque there) and to each loop body; fused
        results are renamed to views everywhere; stacked weights go first."""
        renames: dict = {}
        prologue: list = []
        self.bases = self.results(items)
        top = rule(list(items), renames, prologue, notes, None)
        self.bases.update(self.results(top + prologue))
        top = [self.fuse_loop(i, rule, renames, prologue, notes) if isinstance(i, Loop) else i for i in top]
        self.views.update(renames)
        return [self.rename(i, renames) for i in prologue + top]

    def fuse_loop(self, loop: Loop, rule, renames: dict, prologue: list, notes: list) -> Loop:
        """`rule` applied to a loop's body. A body where it fused nothing, and that no rename has
        reached since, is not scanned again: the rule would find nothing again."""
        if (rule.__name__, id(loop)) in self.settled and self.names_in(loop).isdisjoint(renames):
            return loop
        body = tuple(rule(list(loop.body), renames, prologue, notes, loop))
        if len(body) == len(loop.body) and all(map(operator.is_, body, loop.body)):
            self.settled[rule.__name__, id(loop)] = loop
            return loop
        return replace(loop, body=body)

    def rebase(self, renames: dict, moved: dict) -> None:
        """Views of results that just became views themselves point into the new base: a view
        of a view would name a buffer nothing writes (two relu groups over slices of one
        stacked product, fused again in a later round)."""
        for table in (self.views, dict(renames)):
            for name, buf in table.items():
                if buf.view and buf.view[0] in moved:
                    base, start, _ = moved[buf.view[0]]
                    renames[name] = replace(buf, view=(base, start + buf.view[1], start + buf.view[2]))

    def names_in(self, loop: Loop) -> frozenset:
        seen = self.names_in_loop.get(id(loop))
        if seen is None or seen[0] is not loop:
            names = {n for i in loop.body for n in [i.out.name] + [r.buf.name for r in i.refs]
                     + [r.fill.name for r in i.refs if r.fill is not None]}
            seen = self.names_in_loop[id(loop)] = (loop, frozenset(names))
        return seen[1]

    def rename(self, item, renames: dict):
        if not self.renamed(item, renames):
            return item                    # unchanged: fusion renames a few names in a large program
        if isinstance(item, Loop):
            return replace(item, body=tuple(self.rename(i, renames) for i in item.body))
        swap = lambda r: replace(r, buf=renames.get(r.buf.name, r.buf),
                                 fill=renames.get(r.fill.name, r.fill) if r.fill else None) if isinstance(r, Ref) else r
        return replace(item, out=renames.get(item.out.name, item.out), args=tuple(swap(a) for a in item.args))

    def renamed(self, item, renames: dict) -> bool:
        """Whether `item` names a buffer in `renames` (its result, an argument or a fill)."""
        if not renames:
            return False
        if isinstance(item, Loop):
            return not self.names_in(item).isdisjoint(renames)
        return item.out.name in renames or any(
            isinstance(a, Ref) and (a.buf.name in renames or (a.fill is not None and a.fill.name in renames))
            for a in item.args)

    def declared_param(self, buf: Buf) -> bool:
        """A parameter of the spec (stacked before anything runs), not a value computed from
        parameters, which exists only once its instruction has run."""
        return buf.role is Role.PARAM and buf.name not in self.bases

    def results(self, items: list) -> dict:
        """name -> Buf of every result (the last writer's), loop bodies included."""
        out: dict = {}
        for item in items:
            if isinstance(item, Loop):
                out.update(self.results_of_loop(item))
            else:
                out[item.out.name] = item.out
        return out

    def results_of_loop(self, loop: Loop) -> dict:
        seen = self.loop_results.get(id(loop))
        if seen is None or seen[0] is not loop:
            seen = self.loop_results[id(loop)] = (loop, {i.out.name: i.out for i in loop.body})
        return seen[1]

    def produced(self, phase: list) -> dict:
        """name -> position in the phase of what writes it (a loop writes its body's outputs)."""
        made: dict = {}
        for k, item in enumerate(phase):
            if isinstance(item, Loop):
                made.update(dict.fromkeys(self.results_of_loop(item).keys() - made.keys(), k))
            else:
                made.setdefault(item.out.name, k)
        return made

    def matmul_key(self, instr: Instr):
        if instr.op not in (Op.MATMUL, Op.EMBED) or instr.accumulate or instr.out.view:
            return None
        w, x = instr.args
        if not (isinstance(w, Ref) and self.declared_param(w.buf) and w.buf.rank == 2 and isinstance(x, Ref)):
            return None
        if instr.op is Op.MATMUL and x.buf.rank != 1:
            return None
        return instr.op, x, instr.mode

    def fuse_matmuls(self, phase: list, renames: dict, prologue: list, notes: list, loop) -> list:
        groups: dict = {}
        for instr in phase:
            key = self.matmul_key(instr) if isinstance(instr, Instr) else None
            if key is not None:
                groups.setdefault(key, []).append(instr)
        replaced = {}
        for (op, x, mode), members in groups.items():
            if len(members) < 2:
                continue
            n = next(self.names)
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
            replaced[id(members[0])] = Instr(z, op, (Ref(w_cat), x), mode, line=_lines(members))
            for m in members[1:]:
                replaced[id(m)] = None
            notes.append(StackNote(tuple(w.name for w in weights), str(x), mode.value,
                                   loop.members if loop else (), w_cat.name))
        return [replaced.get(id(i), i) for i in phase if replaced.get(id(i), i) is not None]

    def fuse_elementwise(self, phase: list, renames: dict, prologue: list, notes: list, loop) -> list:
        phase = [self.rename(i, renames) for i in phase]
        made = self.produced(phase)
        readers = _loop_readers(phase) if loop is None else {}
        groups: dict = {}
        for k, instr in enumerate(phase):
            sig = self.cached_signature(instr) if isinstance(instr, Instr) else None
            if sig is not None:         # values for different loops stay apart: each can sink into its own
                groups.setdefault((sig, readers.get(instr.out.name)), []).append((k, instr))
        for sig, members in groups.items():
            for run in _adjacent_runs(members):
                first = min(k for k, _ in run)
                bases = [a.buf.view[0] for _, i in run[:1] for a in i.args if isinstance(a, Ref) and a.buf.view]
                if any(made.get(b, -1) >= first for b in bases):
                    continue
                return self.apply_run(phase, run, renames, prologue, notes, loop)
        return phase

    def cached_signature(self, instr: Instr):
        """signature(), computed once per instruction object (instructions are immutable)."""
        seen = self.signatures.get(id(instr))
        if seen is None or seen[0] is not instr:
            seen = self.signatures[id(instr)] = (instr, self.signature(instr))
        return seen[1]

    def signature(self, instr: Instr):
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
            elif self.declared_param(a.buf) and a.buf.rank == 1:
                parts.append(("param",))
            else:
                return None
        if not any(p[0] == "view" for p in parts):
            return None
        return instr.op, instr.attrs, instr.mode, instr.out.axis, tuple(parts)

    def apply_run(self, phase: list, run: list, renames: dict, prologue: list, notes: list, loop) -> list:
        n = next(self.names)
        bases = {**self.bases, **self.results(phase + prologue)}
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
        self.rebase(renames, {i.out.name: renames[i.out.name].view for i in instrs})
        fused = Instr(out, instrs[0].op, tuple(args), instrs[0].mode, instrs[0].attrs, line=_lines(instrs))
        first = min(k for k, _ in run)
        drop = {k for k, _ in run}
        notes.append(GroupNote(instrs[0].op.value, tuple(i.out.name for i in instrs), instrs[0].mode.value,
                               loop.members if loop else ()))
        return [fused if k == first else i for k, i in enumerate(phase) if k == first or k not in drop]


def _loop_readers(phase: list) -> dict:
    """name -> the positions of the top-level loops reading it (a bidirectional layer's two
    directions read their halves of the stacked input product)."""
    found: dict = {}
    for k, item in enumerate(phase):
        if isinstance(item, Loop):
            for ref in (r for i in instructions([item]) for r in i.refs):
                found.setdefault(ref.buf.name, set()).add(k)
    return {name: frozenset(ks) for name, ks in found.items()}


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


def _lines(instrs: list) -> str:
    """The spec lines of fused instructions, each once, one per line (the comment shows all)."""
    return "\n".join(dict.fromkeys(i.line for i in instrs if i.line))
