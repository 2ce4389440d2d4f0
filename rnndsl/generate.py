"""Generation with feedback, as a spec's `generate:` section says: the sampled output
becomes the next input (`feed: {x: y}` means x[t] := sample(y[t-1])).

Each new step re-runs the compiled forward pass on the sequence so far, so it works for
every spec (several axes, static inputs, bidirectional parts) at a cost quadratic in the
length, which is small for the lengths sampled interactively.
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .errors import DataError
from .ops import Kind


def generate(model, params: dict, prime: list, length: int, temperature: float = 1.0, seed: int = 0,
             context: dict | None = None, stop: int | None = None) -> list:
    """The ids fed to the spec's feedback input after `prime`: up to `length` of them, ending
    early at `stop`. `context` gives any other input (a source sentence, an image) for one
    sequence, unbatched."""
    gen = model.spec.generate
    if gen is None or not gen.feed:
        raise DataError(f"{model.spec.name} has no generate: section",
                        "add generate: {feed: {x: y}} to say which output feeds which input")
    if len(prime) == 0:
        raise DataError("generation needs at least one input to start from", "give --prime")
    feed_input, output = gen.feed[0]
    rng = np.random.default_rng(seed)
    seq = [int(i) for i in prime]
    for _ in range(length):
        scores = _last_scores(model, params, feed_input, output, seq, context or {})
        nxt = int(kernels.sample(np, scores, rng, temperature))
        seq.append(nxt)
        if stop is not None and nxt == stop:
            break
    return seq[len(prime):]


def _last_scores(model, params: dict, feed_input: str, output: str, seq: list, context: dict) -> np.ndarray:
    inputs = _batch_of_one(model.spec, feed_input, seq, context)
    values = model.forward(params, inputs)[output]
    return np.asarray(values[len(seq) - 1, 0], np.float64)


def _batch_of_one(spec, feed_input: str, seq: list, context: dict) -> dict:
    """The fed input as (T, 1); the context as given; every other input a placeholder of the
    right shape (a target is not needed to generate)."""
    T = len(seq)
    feed_axis = next(i.axis for i in spec.inputs if i.name == feed_input)
    inputs = {}
    for inp in spec.inputs:
        if inp.name == feed_input:
            inputs[inp.name] = np.asarray(seq, np.int64)[:, None]
        elif inp.name in context:
            value = np.asarray(context[inp.name])
            inputs[inp.name] = value[:, None] if inp.axis else value[None]
        else:
            steps = (T,) if inp.axis == feed_axis else (1,) if inp.axis else ()
            shape = steps + (1,) + (inp.type.dims if inp.type.kind is Kind.FLOAT else ())
            dtype = np.float64 if inp.type.kind is Kind.FLOAT else np.int64
            inputs[inp.name] = np.zeros(shape, dtype)
    return inputs
