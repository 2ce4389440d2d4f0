"""Program parts -> the same, checked: the invariants every pass must keep (issue 9 item 8).

    items, known names, stage  --verify-->  None, or ProgramError naming the stage and the
                                            instruction that breaks an invariant

A broken invariant is a compiler bug, never a user's mistake, so it is an exception of its
own (not a SpecError). The checks, linear in the program's size:

    defined before use   every buffer read is known before the part runs (inputs, parameters,
                         the tape, adjoints), or written earlier; inside a loop a read at the
                         current step follows the write of that step (or the buffer comes from
                         before the loop); a view counts as written when its base is
    views in bounds      a view (base, start, stop) lies inside its base and is as wide as its dims
    one writer           a forward buffer is written by one instruction (a loop's instruction
                         writes one step at a time); adjoints may accumulate
    ranks                the op table's rank rule gives the result's rank (an accumulation may
                         sum trailing axes away, so there the target's rank is at most it)

and, for the backward program (verify_live): every instruction feeds a parameter's gradient
(an adjoint nothing reads is work for nothing: autodiff's activity analysis keeps them out);
for the plan (verify_plan): a one-step scratch buffer is written in one loop and read
only there, at the current step, never by the backward pass or after the forward pass.
"""
from __future__ import annotations

from ..core.ops import result_rank
from .program import Buf, Instr, Loop, Ref, instructions, kernels


class ProgramError(AssertionError):
    """A pass broke an invariant of the program IR (a bug in rnndsl)."""


def verify(items, known, stage: str, single_writer: bool = True) -> None:
    """Check `items` (Instr | Loop) given the buffer names `known` before they run."""
    defined, written = set(known), set()
    bases = {b.name: b for b in _outputs(items)}
    for item in items:
        if isinstance(item, Loop):
            _verify_loop(item, defined, written, bases, stage, single_writer)
        else:
            _check_instr(item, defined, bases, stage)
            _define(item, defined, written, stage, single_writer)


def _verify_loop(loop: Loop, defined: set, written: set, bases: dict, stage: str, single_writer: bool) -> None:
    before = set(defined)
    in_loop = {i.out.name for i in loop.body}
    for instr in loop.body:
        # other steps of a buffer the loop writes are there when the recurrence reads them
        _check_instr(instr, defined | {r.buf.name for r in instr.refs if r.offset and r.buf.name in in_loop},
                     bases, stage)
        _define(instr, defined, written, stage, single_writer)
    defined |= before


def _check_instr(instr: Instr, defined: set, bases: dict, stage: str) -> None:
    for ref in instr.refs + ([instr.target] if instr.target is not None else []):
        for buf in (ref.buf, ref.fill):
            if buf is not None:
                _check_view(buf, bases, instr, stage)
    for ref in instr.refs:
        for buf in (ref.buf, ref.fill):
            if buf is not None and not _is_defined(buf, defined):
                raise _error(stage, instr, f"reads {buf.name} before anything writes it")
    _check_rank(instr, stage)


def _is_defined(buf: Buf, defined: set) -> bool:
    return buf.name in defined or (buf.view is not None and buf.view[0] in defined)


def _check_view(buf: Buf, bases: dict, instr: Instr, stage: str) -> None:
    if buf.view is None:
        return
    base, start, stop = buf.view
    whole = bases.get(base)
    if not 0 <= start < stop or (buf.dims and buf.dims[0] is not None and stop - start != buf.dims[0]):
        raise _error(stage, instr, f"view {buf.name} = {base}[{start}:{stop}] does not match its dims {buf.dims}")
    if whole is not None and whole.dims and whole.dims[0] is not None and stop > whole.dims[0]:
        raise _error(stage, instr, f"view {buf.name} = {base}[{start}:{stop}] runs past {base}'s {whole.dims[0]}")


def _check_rank(instr: Instr, stage: str) -> None:
    ranks = tuple(a.buf.rank if isinstance(a, Ref) else 0 for a in instr.args)
    rank = result_rank(instr.op, ranks, instr.attr)
    out = instr.target.buf if instr.target is not None else instr.out
    if (out.rank > rank) if instr.accumulate or instr.target is not None else (out.rank != rank):
        raise _error(stage, instr, f"{instr.op.name.lower()} of ranks {ranks} has rank {rank}, "
                     f"but {out.name} has rank {out.rank}")


def _define(instr: Instr, defined: set, written: set, stage: str, single_writer: bool) -> None:
    out = instr.target.buf if instr.target is not None else instr.out
    if single_writer and not instr.accumulate and instr.target is None:
        if out.name in written:
            raise _error(stage, instr, f"writes {out.name}, which an earlier instruction wrote")
        written.add(out.name)
    defined.add(out.name)


def verify_live(backward, results: set, stage: str) -> None:
    """Every instruction of `backward` writes what a later one reads (in a loop, another
    step's instruction too) or one of `results`, the parameters' gradients. A slice of a
    fused buffer counts as its base."""
    live = set(results)

    def reads(instr: Instr) -> set:
        return {b.base for r in instr.refs for b in (r.buf, r.fill) if b is not None}

    def writes(instr: Instr) -> set:       # an accumulation's reads outside the sequence go to its fill
        target = instr.target
        return {instr.out.base} if target is None else {b.base for b in (target.buf, target.fill) if b is not None}
    for item in reversed(backward):
        body = item.body if isinstance(item, Loop) else (item,)
        grew = True
        while grew:                        # a loop's adjoints reach earlier steps through later ones
            grew = False
            for instr in reversed(body):
                if writes(instr) & live and not reads(instr) <= live:
                    live |= reads(instr)
                    grew = True
        for instr in body:
            if not writes(instr) & live:
                raise _error(stage, instr, "writes an adjoint that reaches no parameter's gradient")


def verify_plan(forward, backward, scratch, kept) -> None:
    """A buffer holding one step (`scratch`, base names) is written and read only inside one
    loop, at that step: a forward buffer in the forward pass, an adjoint in the backward pass;
    `kept`: what outlives the forward pass (the tape and the user's values)."""
    scratch = set(scratch)
    adjoints = {(i.target or Ref(i.out)).buf.base for i in instructions(backward)} & scratch
    _verify_steps(forward, scratch - adjoints)
    _verify_steps(backward, adjoints)
    for instr in instructions(backward):
        for ref in instr.refs:
            if ref.buf.base in scratch - adjoints:
                raise _error("plan", instr, f"reads {ref} in the backward pass, but it holds one step only")
    kept_bases = {n for n in kept} & scratch
    if kept_bases:
        raise ProgramError(f"after plan: {', '.join(sorted(kept_bases))} outlive the forward pass but hold "
                           "one step only (a bug in rnndsl: please report it with the spec)")


def _verify_steps(items, scratch: set) -> None:
    for item in items:
        body = instructions([item])
        writes = {(i.target or Ref(i.out)).buf.base for i in body} if isinstance(item, Loop) else set()
        for instr in body:
            for ref in instr.refs + ([ref for ref in [instr.target] if ref is not None and ref.offset]):
                if ref.buf.base in scratch and (ref.offset or ref.buf.base not in writes):
                    raise _error("plan", instr, f"reads {ref}, which holds one step only")
            if not isinstance(item, Loop) and (instr.target or Ref(instr.out)).buf.base in scratch:
                raise _error("plan", instr, "writes a one-step buffer outside a loop")


def verify_kernels(items, known, stage: str) -> None:
    """Every kernel's members are instructions a kernel may hold, in one mode, and each result
    read outside its kernel (by a later item, or after the passes) is among its outputs."""
    from .group import fusable
    for kernel in kernels(items):
        for instr in kernel.body:
            if not isinstance(instr, Instr) or not fusable(instr) or instr.mode is not kernel.mode:
                raise _error(stage, instr, f"is in kernel {kernel.name} but cannot be fused there")
    readers: dict = {}
    for instr in instructions(items):
        for ref in instr.refs:
            readers.setdefault(ref.buf.base, set()).add(id(instr))
    reads = [(k, r) for k in kernels(items) for r in _outside_reads(readers, k)]
    for kernel, name in reads:
        raise ProgramError(f"after {stage}: {name} is read outside kernel {kernel.name} but is not "
                           "among its outputs (a bug in rnndsl: please report it with the spec)")


def _outside_reads(readers: dict, kernel) -> list:
    """Names of the kernel's non-output results that an instruction outside it reads
    (`readers`: base name -> ids of the instructions reading it)."""
    outputs = set(kernel.outputs)
    mine = {i.out.base for i in kernel.body if i.target is None and i.out.name not in outputs
            and i.out.base not in outputs}
    inside = {id(i) for i in kernel.body}
    return sorted(name for name in mine if readers.get(name, set()) - inside)


def _outputs(items) -> list:
    out = []
    for item in items:
        out += [i.out for i in item.body] if isinstance(item, Loop) else [item.out]
    return out


def _error(stage: str, instr: Instr, problem: str) -> ProgramError:
    return ProgramError(f"after {stage}: {instr.out.name} = {instr.op.name.lower()}(...) "
                        f"[{instr.mode.value}] {problem} (a bug in rnndsl: please report it with the spec)")
