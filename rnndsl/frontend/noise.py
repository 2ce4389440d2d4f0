"""Typed IR -> the same IR with every `dropout(x, p)` a product with a mask input.

Dropout multiplies x by a mask that the runtime draws for each training batch: 1/(1-p) with
probability 1-p, else 0 (inverted dropout, so nothing is rescaled at evaluation). The checker
types `dropout(x, p)` like any op; this last rewrite turns each call into `x * _drop<k>`, where
`_drop<k>` is a float input of x's shape over x's axis (a new mask at every step) or, with
`same=1`, a static input: one mask per sequence, reused at every step (variational dropout,
Gal & Ghahramani 2016). A batch without masks (evaluation, sampling, gradcheck) reads ones, so
dropout is off there. Being inputs, the masks reach the interpreter and every backend the same
way, and a test that fixes them checks dropout's gradient by finite differences.
"""
from __future__ import annotations

from dataclasses import replace

from . import ir
from ..core.errors import SpecError
from ..core.ops import Op, floats


def rewrite(equations: list, loss: ir.Expr) -> tuple:
    """(equations, loss, mask inputs) with every dropout call replaced, masks numbered in
    order of appearance (equations in spec order, then the loss)."""
    masks: list = []
    equations = [replace(eq, expr=_rewrite(eq.expr, masks)) for eq in equations]
    return equations, _rewrite(loss, masks), tuple(masks)


def _rewrite(e: ir.Expr, masks: list) -> ir.Expr:
    if isinstance(e, ir.Reduce):
        return replace(e, body=_rewrite(e.body, masks))
    if not isinstance(e, ir.Apply):
        return e
    args = tuple(_rewrite(a, masks) for a in e.args)
    if e.op is not Op.DROPOUT:
        return replace(e, args=args) if args != e.args else e
    x, p, same = args[0], e.attr["p"], bool(e.attr["same"])
    if x.inner is not None:
        raise SpecError.at(e.pos, f"dropout of a value over {x.axis} and {x.inner} is not supported",
                           "drop out what attention reads (the keys or the query) instead of the scores")
    if p == 0:
        return x
    mask_type = floats(*x.type.shape)
    axis = None if same else x.axis
    name = f"_drop{len(masks) + 1}"
    masks.append(ir.Input(name, mask_type, axis, pos=e.pos, dropout=p))
    read = ir.Read(mask_type, x.axis, name, 0, pos=e.pos) if axis else ir.ReadStatic(mask_type, None, name, pos=e.pos)
    return ir.Apply(x.type if x.type.kind.value == "float" else mask_type, x.axis, Op.MUL, (x, read), pos=e.pos)
