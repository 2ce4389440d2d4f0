"""What truncated BPTT differentiates: the loss with each recurrence cut into windows.

`loss_and_grad(..., truncate=k)` drops, inside a reverse loop, every contribution that crosses
a window boundary ((t-1) // k != t // k for a forward recurrence). That is the exact gradient
of this function of the parameters: the interpreter's loss in which a read by a member of a
recurrence of another member at a step in another window returns the value it had at the
base parameters (a constant), so the parameters reach it only through its own window. Reads
of the fill before the first step are never cut. A finite difference of `loss` is thus an
independent reference for the truncated gradient: the sum over windows of each window's
gradient, run from the true state next to it.
"""
from __future__ import annotations

import numpy as np

from ..frontend import ir
from .inputs import prepare
from .interpret import Sequence, _order, interpret
from .timegraph import analyse


class Windowed:
    """The loss of `model` on `inputs` with its recurrences cut every `k` steps, the values
    across each cut held at those of `base` parameters."""

    def __init__(self, model: ir.Model, base: dict, inputs: dict, k: int):
        self.model, self.inputs, self.k = model, inputs, k
        self.base = interpret(model, base, inputs).values
        self.cycle = {m: set(r.members) for r in analyse(model).recurrences for m in r.members}

    def loss(self, params: dict) -> float:
        batch = prepare(self.model, self.inputs)
        params = {k: np.asarray(v, np.float64) for k, v in params.items()}
        losses = []
        for b in range(batch.size):
            lengths = {axis: int(n[b]) for axis, n in batch.lengths.items()}
            sequence = _Cut(self, params, batch, b, lengths)
            for node in _order(self.model, tuple(sorted(lengths.items()))):
                sequence.compute(node)
            losses.append(sequence.eval(self.model.loss, {}))
        return float(np.mean(losses))


class _Cut(Sequence):
    """One sequence of the interpreter, reading across a window boundary of its own
    recurrence from the base values."""

    def __init__(self, windowed: Windowed, params, batch, b, lengths):
        super().__init__(windowed.model, params, batch, b, lengths)
        self.w, self.current = windowed, None

    def compute(self, node) -> None:
        self.current = node          # the loss, evaluated after every node, reads uncut
        super().compute(node)
        self.current = None

    def eval(self, e: ir.Expr, steps: dict):
        if isinstance(e, ir.Read) and e.inner is None and self._cut(e, steps):
            return self.w.base[e.var][steps[e.axis] + e.offset, self.b]
        return super().eval(e, steps)

    def _cut(self, e: ir.Read, steps: dict) -> bool:
        node, k = self.current, self.w.k
        if node is None or node.t is None or e.var not in self.w.cycle.get(node.var, ()):
            return False
        there = steps[e.axis] + e.offset
        return 0 <= there < self.lengths[e.axis] and there // k != node.t // k
