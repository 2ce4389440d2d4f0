"""`rnndsl compile --explain`: what the passes did, said in the spec's own terms."""
from __future__ import annotations

import re

from ..core.ops import Op
from .plan import nbytes
from .program import GroupNote, Kernel, Loop, LoopNote, Mode, Program, Role, SinkNote, StackNote, instructions, kernels


def explain(model, steps: int = 100, batch: int = 32) -> str:
    prog: Program = model.program
    labels = dict(prog.labels)
    name = lambda buf: labels.get(buf, buf)
    out = [f"{model.spec.name} ({model.spec.path}), T={steps} B={batch}, {model.dtype.name}", ""]
    out += _recurrences(prog)
    stacks = [n for n in prog.notes if isinstance(n, StackNote)]
    if stacks:
        out += ["", "fused matmuls (weights stacked once per call)"]
        for n in stacks:
            where = f"once per step in the loop of {', '.join(n.loop)}" if n.loop else "once for all steps"
            out.append(f"  [{', '.join(n.weights)}] @ {n.operand}: one GEMM, {where}")
    groups = [n for n in prog.notes if isinstance(n, GroupNote)]
    if groups:
        out += ["", "elementwise groups (one call over adjacent slices)"]
        for n in groups:
            where = f"per step ({', '.join(n.loop)})" if n.loop else "all steps at once"
            out.append(f"  {n.op}: {'; '.join(name(o) for o in n.outputs)}  [{where}]")
    out += _kernels(prog)
    out += _compiled_loops(getattr(model, "source", ""), batch)
    out += ["", "weight gradients (one GEMM over all T*B rows, after the reverse loop)"]
    stacked = {n.stacked: "[" + ", ".join(n.weights) + "]" for n in stacks}
    out += ["  " + (", ".join(stacked.get(w, w) for w in _weight_gemms(prog)) or "none")]
    out += ["", *_buffers(prog, steps, batch, model.dtype.itemsize)]
    return "\n".join(out)


def _compiled_loops(source: str, batch: int) -> list:
    """The loops a kernel backend also compiled whole, and from the emitted module the rows
    up to which forward() and backward() run them (backends/numba/loops.py)."""
    lines, found = source.split("\n"), []
    for i, line in enumerate(lines):
        m = re.search(r"if _single and _B \* (\d+) <= (\d+):", line)
        if not m:
            continue
        what = next((x.strip()[2:] for x in lines[i + 1:i + 8] if re.match(r"\s*# (adjoint of the )?recurrence", x)), "a loop")
        per_row, limit = int(m.group(1)), int(m.group(2))
        found.append(f"  {what}: for B <= {limit // per_row} ({per_row} multiply-adds a row per step; "
                     f"{'yes' if batch * per_row <= limit else 'not'} at B={batch})")
    if not found:
        return []
    return ["", "loops compiled whole for a few rows (float32; Python's cost per step would be the time)", *found]


def _kernels(prog: Program) -> list:
    found = [(part, k) for part, items in (("forward", prog.forward), ("backward", prog.backward))
             for k in kernels(items)]
    if not found:
        return []
    out = ["", "kernels (elementwise chains, each one loop over the batch in a kernel backend; "
               "NumPy runs their ops one by one)"]
    for part, k in found:
        where = "per step" if k.mode is Mode.STEP else "all steps at once" if k.mode is Mode.SEQ else "per sequence"
        out.append(f"  {k.name} ({part}, {where}): {len(k.body)} op{'s' * (len(k.body) != 1)}, writes {', '.join(k.outputs)}")
        out += [f"    {line}" for line in k.line.split("\n") if line]
    return out


def _recurrences(prog: Program) -> list:
    labels = dict(prog.labels)
    loops = [n for n in prog.notes if isinstance(n, LoopNote)]
    if not loops:
        return ["no recurrences: every equation is computed for all steps at once"]
    out = ["recurrences"]
    fused = {tuple(item.members): item for item in prog.forward if isinstance(item, Loop)}
    for n in loops:
        loop = fused.get(tuple(n.members))
        after = len(instructions(loop.body)) if loop else n.ops
        counts = f"{n.ops} ops per step" if after == n.ops else f"{n.ops} ops per step as written, {after} after fusion"
        if loop and any(isinstance(i, Kernel) for i in loop.body):
            counts += f" ({_calls(loop.body)})"
        out.append(f"  {', '.join(n.members)}: {n.direction} over {n.axis}, {counts}")
        if n.hoisted:
            out.append("    hoisted out of the loop (computed for all steps at once):")
            out += [f"      {h}" for h in n.hoisted]
        moved = [v for s in prog.notes if isinstance(s, SinkNote) and tuple(s.loop) == tuple(n.members)
                 for v in s.values]
        if moved:
            out.append("    moved back into it (only the loop reads them: its kernel computes them per step):")
            out += [f"      {_label(prog, labels, v)}" for v in moved]
    return out


def _label(prog: Program, labels: dict, name: str) -> str:
    """A buffer in the spec's terms: its expression, or those of the views a fusion made it of."""
    if name in labels:
        return labels[name]
    parts = [labels[b.name] for b in prog.values if b.view and b.view[0] == name and b.name in labels]
    return "; ".join(parts) or name


def _calls(body) -> str:
    ks = sum(isinstance(i, Kernel) for i in body)
    rest = len(body) - ks
    return f"{rest} op{'s' * (rest != 1)} and {ks} kernel{'s' * (ks != 1)}"


def _weight_gemms(prog: Program) -> list:
    return [i.target.buf.of for i in instructions(prog.backward)
            if i.op in (Op.MATMUL_VJP, Op.EMBED_VJP) and i.mode is Mode.SEQ and i.target is not None
            and i.target.buf.role is Role.PARAM]


def _buffers(prog: Program, steps: int, batch: int, itemsize: int) -> list:
    bufs = {b.name: b for b in prog.values + prog.grads}
    mib = lambda names, scratch=prog.scratch: f"{nbytes(bufs, names, steps, batch, itemsize, scratch) / 2**20:.1f} MiB"
    labels = dict(prog.labels)
    forward = [i.out.name for i in instructions(prog.forward) if i.out.view is None]
    inputs = [b.name for b in prog.inputs]
    kept = sorted(set(prog.tape) | set(prog.outputs))
    grads = [g.name for g in prog.grads if g.view is None]
    one_step = [n for n in prog.scratch if n in forward]
    adjoint_steps = [n for n in prog.scratch if n in grads]
    return [f"forward: {len(forward)} arrays, {mib(forward)} ({len(one_step)} hold one step only: "
            f"{', '.join(labels.get(n, n) for n in one_step) or 'none'})",
            f"tape (what backward() and the caller read): {len(kept)} arrays and the inputs, {mib(kept + inputs)}; "
            f"keeping every array for all steps would take {mib(forward + inputs, ())}",
            f"backward: {len(grads)} adjoint arrays, {mib(grads)} ({len(prog.grads) - len(grads)} more are views; "
            f"{len(adjoint_steps)} hold one step only: {', '.join(adjoint_steps) or 'none'})"]
