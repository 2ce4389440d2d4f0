"""The linear program: what backends emit. Buffers, instructions and loops.

A program is a list of `Instr` and `Loop`. Every instruction applies one op of the op
table to `Ref`s (a buffer read at an offset) and constants, in one of three modes:

    PARAM   once per call, on parameters only       arrays (...)          e.g. fused weights
    STATIC  once per sequence, for the whole batch  arrays (B, ...)
    SEQ     all steps of an axis at once (hoisted)  arrays (T, B, ...)
    STEP    inside a `Loop`, at step t              writes buf[t] of a (T, B, ...) buffer

Reads outside a sequence give the `fill` buffer (a state init) or zeros; for an offset > 0
"outside" depends on each sequence's length, so those reads are masked.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..core.ops import Kind, Op


class Mode(enum.Enum):
    PARAM = "param"
    STATIC = "static"
    SEQ = "seq"
    STEP = "step"


class Role(enum.Enum):
    PARAM = "param"        # a parameter, or a value made from parameters only: no batch axes
    INPUT = "input"
    VALUE = "value"        # a forward value
    GRAD = "grad"          # an adjoint


@dataclass(frozen=True)
class Buf:
    name: str
    dims: tuple                   # the spec's shape, never batch or time
    axis: str | None              # sequence buffers are (T, B, ...) over this axis
    role: Role
    kind: Kind = Kind.FLOAT       # ONEHOT and INDEX buffers hold int class indices
    classes: int = 0

    @property
    def rank(self) -> int:
        return len(self.dims)

    view: tuple | None = None     # (base buffer name, start, stop): a slice of a fused buffer
    of: str = ""                  # an adjoint's primal: the forward buffer it is the adjoint of
    inner: str | None = None      # a second axis (attention, e[t, s]): (T, S, B, ...), a step (S, B, ...)

    @property
    def base(self) -> str:
        """The buffer that holds this one's memory: its own name, or a fused buffer's."""
        return self.view[0] if self.view else self.name


@dataclass(frozen=True)
class Ref:
    buf: Buf
    offset: int = 0
    fill: Buf | None = None       # what reads outside the sequence give; None: zeros

    def __str__(self) -> str:
        if self.buf.axis is None:
            return self.buf.name
        return f"{self.buf.name}[{self.buf.axis}{self.offset:+d}]" if self.offset else f"{self.buf.name}[{self.buf.axis}]"


@dataclass(frozen=True)
class Instr:
    out: Buf
    op: Op
    args: tuple                   # Ref | float
    mode: Mode
    attrs: tuple = ()
    accumulate: bool = False      # target += value (adjoints)
    line: str = field(default="", compare=False)     # the spec line it comes from
    target: Ref | None = None     # where an accumulation goes: an adjoint at an offset, with fill
    summed: bool = False          # the value is already summed over batch and time (a param's)

    @property
    def attr(self) -> dict:
        return dict(self.attrs)

    @property
    def refs(self) -> list:
        return [a for a in self.args if isinstance(a, Ref)]


@dataclass(frozen=True)
class Loop:
    axis: str
    reverse: bool                 # True: t runs from the end to the start
    body: tuple                   # Instr
    members: tuple = ()           # the recurrence's variables (for comments)
    truncate: bool = False        # truncated BPTT cuts adjoints crossing window edges


@dataclass(frozen=True)
class Kernel:
    """Consecutive elementwise instructions of one phase, run as one kernel (compiler/group.py):
    each row of the batch goes through every member in order, so a value made and used only
    inside stays in registers. A backend may also run the members one by one."""
    name: str
    body: tuple                   # Instr, in program order, all elementwise, one mode
    outputs: tuple                # names of member results read outside the kernel

    @property
    def mode(self) -> Mode:
        return self.body[0].mode

    @property
    def line(self) -> str:
        return "\n".join(dict.fromkeys(l for i in self.body for l in str(i.line).split("\n") if l))


@dataclass(frozen=True)
class LoopNote:
    """lower: a recurrence became a loop."""
    members: tuple                # its variables
    direction: str                # "forward" | "backward"
    axis: str
    hoisted: tuple                # spec expressions computed for all steps before the loop
    ops: int                      # instructions per step as written (before fusion)


@dataclass(frozen=True)
class StackNote:
    """fuse: matmuls sharing an operand became one GEMM over stacked weights."""
    weights: tuple                # the weights' names, in stacking order
    operand: str                  # the shared operand, as program text
    mode: str
    loop: tuple                   # the members of the loop it runs in; () outside loops
    stacked: str                  # the stacked weight buffer's name


@dataclass(frozen=True)
class SinkNote:
    """sink: values hoisted out of a loop that only the loop reads went back into it."""
    values: tuple                 # their names
    loop: tuple                   # the loop's members


@dataclass(frozen=True)
class GroupNote:
    """fuse: one elementwise op over adjacent slices became one call."""
    op: str
    outputs: tuple                # the names of the values it computes
    mode: str
    loop: tuple


@dataclass(frozen=True)
class Program:
    forward: tuple                # Instr | Loop
    backward: tuple               # Instr | Loop
    params: tuple                 # Buf (role PARAM)
    inputs: tuple                 # Buf (role INPUT)
    values: tuple                 # every forward Buf, the views into fused buffers included
    grads: tuple                  # every adjoint Buf
    loss: Buf                     # per-sequence loss, (B,)
    outputs: tuple                # names of equation buffers returned to the user
    zeroed: tuple = ()            # adjoints that start at zero (the rest are written once)
    notes: tuple = ()             # LoopNote | StackNote | GroupNote | SinkNote: what the passes did (--explain)
    labels: tuple = ()            # (buffer name, the spec expression it holds)
    tape: tuple = ()              # names of the forward buffers the backward pass reads (plan.py)
    scratch: tuple = ()           # step buffers kept one step at a time: (B, ...), not (T, B, ...)


def instructions(items) -> list:
    """Every Instr of a program part, loops and kernels flattened."""
    out = []
    for item in items:
        out.extend(instructions(item.body) if isinstance(item, (Loop, Kernel)) else [item])
    return out


def kernels(items) -> list:
    """Every Kernel of a program part, inside loops too."""
    found = []
    for item in items:
        if isinstance(item, Kernel):
            found.append(item)
        elif isinstance(item, Loop):
            found += kernels(item.body)
    return found


def show(items, indent: str = "") -> str:
    """The program as text: `rnndsl compile --dump program`."""
    lines = []
    for item in items:
        if isinstance(item, Loop):
            order = "reversed " if item.reverse else ""
            lines.append(f"{indent}for {item.axis} in {order}steps:    # {', '.join(item.members)}")
            lines.append(show(item.body, indent + "    "))
            continue
        if isinstance(item, Kernel):
            lines.append(f"{indent}kernel {item.name}:    # writes {', '.join(item.outputs)}")
            lines.append(show(item.body, indent + "    "))
            continue
        args = ", ".join(str(a) if isinstance(a, Ref) else f"{a:g}" for a in item.args)
        attrs = "".join(f", {k}={v:g}" for k, v in item.attrs)
        if item.target is not None:
            target = str(item.target) if item.mode is Mode.STEP or item.target.offset else item.target.buf.name
        else:
            target = f"{item.out.name}[{item.out.axis}]" if item.mode is Mode.STEP else item.out.name
        op = "+=" if item.accumulate else "="
        lines.append(f"{indent}{target} {op} {item.op.name.lower()}({args}{attrs})    [{item.mode.value}]")
    return "\n".join(lines)
