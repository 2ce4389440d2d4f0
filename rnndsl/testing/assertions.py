"""Assertions on a compiled float64 model at given parameters and inputs; each raises an
AssertionError that names the value, parameter or entry that is wrong and by how much.

    assert_matches_interpreter   the forward (loss, per-sequence losses, every variable)
                                 equals the reference interpreter's
    assert_gradients             every parameter's gradient equals central differences of
                                 the loss in float64, clear of every kink (tools/gradcheck.py)
    assert_truncation_exact      truncated BPTT equals the sum of per-window gradients
    assert_padding_invariant     garbage in more padded steps changes nothing
    assert_float32_close         the float32 build agrees to float32 precision
"""
from __future__ import annotations

import numpy as np

from ..pipeline import compile as compile_spec
from ..semantics.inputs import fill_padding
from ..semantics.timegraph import analyse
from ..tools.gradcheck import FORWARD_TOL, check, compare_forward, kink_distances


def assert_matches_interpreter(model, params: dict, inputs: dict, tol: float = FORWARD_TOL) -> None:
    bad = [v for v in compare_forward(model, params, inputs) if not v.ok(tol)]
    assert not bad, "forward differs from the reference interpreter:\n" + "\n".join(
        f"  {v.name} {list(v.shape)}: largest |compiled - interpreted| / max(1, |interpreted|) = {v.error:.2e}"
        for v in bad)


def assert_gradients(model, params: dict, inputs: dict, tol: float = 1e-6, seed: int = 0,
                     truncate: int | None = None, rng: np.random.Generator | None = None, entries: int = 8) -> None:
    """Up to `entries` entries and one random direction of each parameter (drawn by `seed`,
    or `rng`); with `truncate`, truncated BPTT's gradient against its own loss
    (semantics/truncated.py)."""
    rng = np.random.default_rng(seed) if rng is None else rng
    report = check(model, params, inputs, rng, entries, truncate)
    bad = [p for p in report.params if not p.ok(tol)]
    what = f"truncated BPTT (window {truncate})" if truncate else "gradient"
    assert not bad, f"{what} differs from finite differences (tol {tol:g}):\n" + "\n".join(map(_describe, bad))


def _describe(p) -> str:
    if not p.checked:
        return f"  {p.name} {list(p.shape)}: all {p.skipped} directions tried lie on a kink"
    return (f"  {p.name} {list(p.shape)} at {p.where}: derived {p.derived:.10g}, "
            f"finite difference {p.numeric:.10g} (relative error {p.worst:.2e})")


def assert_truncation_exact(model, params: dict, inputs: dict, k: int, tol: float = 1e-6, seed: int = 0,
                            rng: np.random.Generator | None = None, entries: int = 8) -> None:
    """Truncating at `k` leaves the loss; without a recurrence it leaves the gradients too,
    and with one each gradient is the sum over windows of k steps of that window's gradient
    from the true state beside it (finite differences of the loss with the reads across
    window edges held constant)."""
    loss, full = model.loss_and_grad(params, inputs)
    truncated_loss, truncated = model.loss_and_grad(params, inputs, truncate=k)
    assert truncated_loss == loss, f"truncating at {k} changed the loss: {truncated_loss!r} != {loss!r}"
    if not analyse(model.spec).recurrences:
        assert_grads_close(truncated, full, rtol=1e-12, atol=1e-14, what=f"truncated at {k}, no recurrence")
        return
    assert_gradients(model, params, inputs, tol, seed, truncate=k, rng=rng, entries=entries)


def assert_padding_invariant(model, params: dict, inputs: dict, extra: int = 2, seed: int = 0) -> None:
    """`extra` more padded steps on every axis, full of garbage: the loss, the gradients and
    every variable at valid steps stay as they were, and padded steps of variables are zero."""
    more = padded(model.spec, inputs, extra, np.random.default_rng(seed))
    loss, grads = model.loss_and_grad(params, inputs)
    padded_loss, padded_grads = model.loss_and_grad(params, more)
    assert np.isclose(padded_loss, loss, rtol=1e-12, atol=1e-14), \
        f"{extra} padded steps changed the loss: {padded_loss!r} != {loss!r}"
    assert_grads_close(padded_grads, grads, rtol=1e-10, atol=1e-13, what=f"{extra} padded steps")
    out, padded_out = model.forward(params, inputs), model.forward(params, more)
    for eq in model.spec.equations:
        valid = tuple(slice(0, n) for n in out[eq.name].shape)     # the steps of every axis it has
        got, rest = padded_out[eq.name][valid], padded_out[eq.name].copy()
        rest[valid] = 0
        assert not rest.any(), f"{eq.name}: the padded steps are not zero"
        np.testing.assert_allclose(got, out[eq.name], rtol=1e-12, atol=1e-14,
                                   err_msg=f"{eq.name} with {extra} padded steps")


def padded(spec, inputs: dict, extra: int, rng: np.random.Generator) -> dict:
    """`inputs` with `extra` more steps on every axis and garbage in every padded step."""
    grown = dict(inputs)
    for inp in (i for i in spec.inputs if i.axis):
        a = np.asarray(inputs[inp.name])
        grown[inp.name] = np.concatenate([a, np.zeros((extra,) + a.shape[1:], a.dtype)])
    return fill_padding(spec, grown, rng)


def assert_float32_close(model, params: dict, inputs: dict, rtol: float = 1e-4) -> None:
    """The same spec built in float32 on the same backend: loss and gradients within `rtol`
    (gradients relative to the largest one), and every value float32."""
    single = compile_spec(model.spec, backend=model.backend, dtype="float32")
    loss, grads = model.loss_and_grad(params, inputs)
    loss32, grads32 = single.loss_and_grad(params, inputs)
    assert np.isclose(loss32, loss, rtol=rtol, atol=rtol / 10), f"float32 loss {loss32!r}, float64 {loss!r}"
    scale = max([np.abs(g).max() for g in grads.values() if g.size] + [1e-3])
    for name, g in grads.items():
        assert grads32[name].dtype == np.float32, f"the gradient of {name} is {grads32[name].dtype}"
        np.testing.assert_allclose(grads32[name], g, rtol=rtol, atol=rtol * scale, err_msg=f"float32 gradient of {name}")
    out = single.forward(params, inputs)
    for eq in model.spec.equations:
        assert out[eq.name].dtype == np.float32, f"{eq.name} is {out[eq.name].dtype} in the float32 build"


def assert_grads_close(got: dict, want: dict, rtol: float, atol: float = 0.0, what: str = "") -> None:
    assert set(got) == set(want), f"{what}: gradients of {sorted(got)}, expected {sorted(want)}"
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=f"{what}: {name}")


def near_a_kink(spec, params: dict, inputs: dict, margin: float = 1e-4) -> bool:
    """Whether an argument of an op with a kink (the op table's KINKS: relu, abs, clip, min,
    max, maxpool2d, max_t, min_t) lies within `margin` of it and moves with the parameters
    (one that never moves, like relu of a zero fill, is harmless: neither side of the kink
    is ever reached). Float32 rounding can cross such a kink."""
    rng = np.random.default_rng(0)
    nudged = {k: v + 1e-3 * rng.normal(size=np.shape(v)) for k, v in params.items()}
    base, moved = kink_distances(spec, params, inputs), kink_distances(spec, nudged, inputs)
    with np.errstate(invalid="ignore"):             # inf - inf: an argument that stays infinite
        return bool(((np.abs(base - moved) > 1e-12) & (np.abs(base) < margin)).any())
