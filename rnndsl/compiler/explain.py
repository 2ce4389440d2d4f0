"""`rnndsl compile --explain`: what the schedule did, said in the spec's own terms."""
from __future__ import annotations

import numpy as np

from ..core.ops import Op
from .program import Loop, Mode, Program, Role, instructions


def explain(model, steps: int = 100, batch: int = 32) -> str:
    prog: Program = model.program
    labels = dict(prog.labels)
    name = lambda buf: labels.get(buf, buf)
    out = [f"{model.spec.name} ({model.spec.path}), T={steps} B={batch}, {model.dtype.name}", ""]
    out += _recurrences(prog)
    fused = [n for n in prog.notes if n[0] == "matmul"]
    if fused:
        out += ["", "fused matmuls (weights stacked once per call)"]
        for _, weights, operand, mode, loop, _ in fused:
            where = f"once per step in the loop of {', '.join(loop)}" if loop else "once for all steps"
            out.append(f"  [{', '.join(weights)}] @ {operand}: one GEMM, {where}")
    groups = [n for n in prog.notes if n[0] == "elementwise"]
    if groups:
        out += ["", "elementwise groups (one call over adjacent slices)"]
        for _, op, outs, mode, loop in groups:
            where = f"per step ({', '.join(loop)})" if loop else "all steps at once"
            out.append(f"  {op}: {'; '.join(name(o) for o in outs)}  [{where}]")
    out += ["", "weight gradients (one GEMM over all T*B rows, after the reverse loop)"]
    stacked = {n[5]: "[" + ", ".join(n[1]) + "]" for n in fused}
    out += ["  " + (", ".join(stacked.get(w, w) for w in _weight_gemms(prog)) or "none")]
    out += ["", _buffers(prog, steps, batch, model.dtype.itemsize)]
    return "\n".join(out)


def _recurrences(prog: Program) -> list:
    loops = [n for n in prog.notes if n[0] == "loop"]
    if not loops:
        return ["no recurrences: every equation is computed for all steps at once"]
    out = ["recurrences"]
    fused = {tuple(item.members): len(item.body) for item in prog.forward if isinstance(item, Loop)}
    for _, members, direction, axis, hoisted, ops in loops:
        after = fused.get(tuple(members), ops)
        counts = f"{ops} ops per step" if after == ops else f"{ops} ops per step as written, {after} after fusion"
        out.append(f"  {', '.join(members)}: {direction} over {axis}, {counts}")
        if hoisted:
            out.append("    hoisted out of the loop (computed for all steps at once):")
            out += [f"      {h}" for h in hoisted]
    return out


def _weight_gemms(prog: Program) -> list:
    return [i.target.buf.name[2:] for i in instructions(prog.backward)
            if i.op in (Op.MATMUL_VJP, Op.EMBED_VJP) and i.mode is Mode.SEQ and i.target is not None
            and i.target.buf.role is Role.PARAM]


def _buffers(prog: Program, steps: int, batch: int, itemsize: int) -> str:
    def size(buf) -> int:
        n = int(np.prod(buf.dims)) if buf.dims else 1
        return n * (steps * batch if buf.axis else 1 if buf.role is Role.PARAM else batch)

    forward = {i.out.name: i.out for i in instructions(prog.forward) if i.out.view is None}
    backward = [g for g in prog.grads if g.view is None]
    f_bytes = sum(size(b) for b in forward.values()) * itemsize
    b_bytes = sum(size(b) for b in backward) * itemsize
    return (f"buffers: forward {len(forward)} arrays, {f_bytes / 2**20:.1f} MiB; "
            f"backward {len(backward)} adjoint arrays, {b_bytes / 2**20:.1f} MiB "
            f"({sum(1 for g in prog.grads if g.view)} more are views)")
