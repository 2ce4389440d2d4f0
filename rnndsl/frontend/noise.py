"""Typed IR -> the same IR with every `dropout(x, p)`, `mask_steps(x, width, n)` and
`mask_band(x, width, n)` a product with a mask input.

Dropout multiplies x by a mask that the runtime draws for each training batch: 1/(1-p) with
probability 1-p, else 0 (inverted dropout, so nothing is rescaled at evaluation). The checker
types `dropout(x, p)` like any op; this last rewrite turns each call into `x * _drop<k>`, where
`_drop<k>` is a float input of x's shape over x's axis (a new mask at every step) or, with
`same=1`, a static input: one mask per sequence, reused at every step (variational dropout,
Gal & Ghahramani 2016). A batch without masks (evaluation, sampling, gradcheck) reads ones, so
dropout is off there. Being inputs, the masks reach the interpreter and every backend the same
way, and a test that fixes them checks dropout's gradient by finite differences.

`mask_steps` and `mask_band` are SpecAugment's time and frequency masks (Park et al. 2019):
while training, n runs of up to `width` consecutive steps of each sequence (all entries), or of
up to `width` consecutive entries of the last dimension (the same at every step) are zeroed,
without rescaling; each run's width and start are drawn uniformly. The step mask is over x's
axis, the band mask a static input like `same=1` dropout's.
"""
from __future__ import annotations

from dataclasses import replace

from . import ir
from ..core.errors import SpecError
from ..core.ops import Op, floats


def rewrite(equations: list, loss: ir.Expr) -> tuple:
    """(equations, loss, mask inputs) with every noise call replaced, masks numbered in
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
    if e.op not in NOISE:
        return replace(e, args=args) if args != e.args else e
    x, attr = args[0], e.attr
    if x.inner is not None:
        raise SpecError.at(e.pos, f"{e.op.value} of a value over {x.axis} and {x.inner} is not supported",
                           f"apply {e.op.value} to what attention reads (the keys or the query) instead of the scores")
    if e.op is Op.DROPOUT:
        noise, per_step = ir.Noise("dropout", p=attr["p"]), not attr["same"]
    else:
        noise = ir.Noise(NOISE[e.op], width=int(attr["width"]), n=int(attr["n"]))
        per_step = e.op is Op.MASK_STEPS
        if per_step and x.axis is None:
            raise SpecError.at(e.pos, "mask_steps zeros steps of a sequence, and its argument has none",
                               "mask a value over an axis, such as mask_steps(x[t], 10)")
    if noise.p == 0 and noise.width == 0:
        return x
    mask_type = floats(*x.type.shape)
    axis = x.axis if per_step else None
    name = f"_{'drop' if e.op is Op.DROPOUT else 'mask'}{len(masks) + 1}"
    masks.append(ir.Input(name, mask_type, axis, pos=e.pos, noise=noise))
    read = ir.Read(mask_type, x.axis, name, 0, pos=e.pos) if axis else ir.ReadStatic(mask_type, None, name, pos=e.pos)
    return ir.Apply(mask_type, x.axis, Op.MUL, (x, read), pos=e.pos)    # a one-hot input times a mask is floats


NOISE = {Op.DROPOUT: "dropout", Op.MASK_STEPS: "steps", Op.MASK_BAND: "band"}
