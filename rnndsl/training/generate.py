"""Generation with feedback, as a spec's `generate:` section says: the sampled output
becomes the next input (`feed: {x: y}` means x[t] := sample(y[t-1])).

Where the output reads the generated axis only at the current step and, through carried
recurrences, at the step before (a char-RNN, an LSTM language model), generation runs the
prime once and then one step at a time from the carried state: linear in the length. Any other
spec (a lookahead or a window over past inputs, a backward chain, a reduction over the axis, a
state started from a computed value) re-runs the forward pass on the whole sequence so far for
each new symbol, which is right for every spec and quadratic in the length.

The parameters go to the model's device once; each step brings back only the scores of the
last step, which the host samples from (one seeded NumPy generator, whichever the backend).
"""
from __future__ import annotations

import numpy as np

from ..frontend import ir
from ..core import kernels, limits
from ..core.errors import DataError
from ..semantics.inputs import prepare
from ..core.ops import Kind
from ..runtime import device


def generate(model, params: dict, prime: list, length: int, temperature: float = 1.0, seed: int = 0,
             context: dict | None = None, stop: int | None = None) -> list:
    """The ids fed to the spec's feedback input after `prime`: up to `length` of them, ending
    early at `stop`. `context` gives any other input (a source sentence, an image) for one
    sequence, unbatched."""
    return list(stream(model, params, prime, length, temperature, seed, context, stop))


def stream(model, params: dict, prime: list, length: int, temperature: float = 1.0, seed: int = 0,
           context: dict | None = None, stop: int | None = None):
    """`generate`'s ids as an iterator, each yielded as soon as it is sampled (the CLI prints
    them as they come); the arguments are checked before the first."""
    gen = model.spec.generate
    if gen is None or not gen.feed:
        raise DataError(f"{model.spec.name} has no generate: section",
                        "add generate: {feed: {x: y}} to say which output feeds which input")
    if len(prime) == 0:
        raise DataError("generation needs at least one symbol to start from, and the prime is empty",
                        "give a non-empty --prime, or a start token in the spec's generate: section")
    limits.check_sampling(length, temperature)
    limits.check_seed(seed)
    params = device.to_device(model.xp, model._params(params))     # checked and moved once
    return _sample(model, params, gen.feed[0], prime, length, temperature, seed, context, stop)


def _sample(model, params: dict, feed: tuple, prime: list, length: int, temperature: float, seed: int,
            context: dict | None, stop: int | None):
    feed_input, output = feed
    rng = np.random.default_rng(seed)
    seq = [int(i) for i in prime]
    carried = stepwise(model.spec, feed_input, output)
    scores, carry = _scores(model, params, feed_input, output, seq, context or {}, carried)
    for _ in range(length):
        nxt = int(kernels.sample(np, scores, rng, temperature))
        seq.append(nxt)
        yield nxt
        if stop is not None and nxt == stop or len(seq) - len(prime) == length:
            break
        if carry is not None:            # one step from the carried state
            scores, carry = _scores(model, params, feed_input, output, [nxt], context or {}, carried, carry)
        else:
            scores, _ = _scores(model, params, feed_input, output, seq, context or {}, None)


def _scores(model, params: dict, feed_input: str, output: str, seq: list, context: dict,
            carried: set | None, carry: dict | None = None) -> tuple:
    """The output's scores at the last step of `seq` and, when `carried` names the recurrences
    to carry (all of them present in the module's final states), the carry for the next step."""
    batch = prepare(model.spec, _batch_of_one(model.spec, feed_input, seq, context))
    tape = model.module.forward(params, batch.arrays, batch.lengths, model.dtype, carry)
    scores = np.asarray(device.to_host(tape[output][len(seq) - 1, 0]), np.float64)
    if carried is None or not carried <= set(tape["_final"]):
        return scores, None
    return scores, {name: tape["_final"][name] for name in carried}


def stepwise(spec: ir.Model, feed_input: str, output: str) -> set | None:
    """The recurrences to carry when `output` can be generated one step at a time along the fed
    input's axis (every value it needs there read at the current step, or at the step before
    for a recurrence); None when it cannot."""
    axis = next(i.axis for i in spec.inputs if i.name == feed_input)
    axes = {e.name: e.axis for e in spec.equations} | {i.name: i.axis for i in spec.inputs}
    equations = {e.name: e for e in spec.equations}
    carried, seen, todo = set(), set(), [output]
    while todo:
        name = todo.pop()
        if name in seen or name not in equations:
            continue
        seen.add(name)
        for node in ir.walk(equations[name].expr):
            if isinstance(node, ir.Reduce) and node.over == axis:
                return None
            var = getattr(node, "var", None)
            if var is None:
                continue
            if axes.get(var) == axis:
                if not isinstance(node, ir.Read) or node.offset not in (0, -1):
                    return None                  # a lookahead, a window, an absolute step, a whole sequence
                if node.offset == -1:
                    if var == feed_input:
                        return None
                    carried.add(var)
            todo.append(var)
    return carried


def _batch_of_one(spec, feed_input: str, seq: list, context: dict) -> dict:
    """One sequence's inputs: the fed `seq` as (T, 1), the unbatched `context` as a batch of one."""
    return rows_batch(spec, feed_input, np.asarray(seq, np.int64)[:, None], batch_of_one(spec, context), [0])


def batch_of_one(spec, context: dict) -> dict:
    """Unbatched context values (a source sentence (S,), an image) as a batch of one."""
    axis = {i.name: i.axis for i in spec.inputs}
    return {name: np.asarray(v)[:, None] if axis.get(name) else np.asarray(v)[None] for name, v in context.items()}


def rows_batch(spec, feed_input: str, fed: np.ndarray, context: dict, owners) -> dict:
    """The inputs for rows of hypotheses: the fed input as `fed` (T, R); each row's context the
    column `owners[r]` of the batched `context` (its "lengths" too); every other input a
    placeholder of the right shape (a target is not needed to generate)."""
    T, rows = fed.shape
    owners = np.asarray(owners, np.int64)
    feed_axis = next(i.axis for i in spec.inputs if i.name == feed_input)
    inputs, lengths = {}, {feed_axis: np.full(rows, T, np.int64)}
    for axis, n in (context.get("lengths") or {}).items():
        if axis != feed_axis:
            lengths[axis] = np.asarray(n)[owners]
    for inp in spec.inputs:
        if inp.name == feed_input:
            inputs[inp.name] = fed
        elif inp.name in context:
            inputs[inp.name] = np.take(np.asarray(context[inp.name]), owners, axis=1 if inp.axis else 0)
        else:
            steps = (T,) if inp.axis == feed_axis else (1,) if inp.axis else ()
            shape = steps + (rows,) + (inp.type.dims if inp.type.kind is Kind.FLOAT else ())
            dtype = np.float64 if inp.type.kind is Kind.FLOAT else np.int64
            inputs[inp.name] = np.zeros(shape, dtype)
            if inp.axis and inp.axis != feed_axis:
                lengths.setdefault(inp.axis, np.ones(rows, np.int64))
    return {**inputs, "lengths": lengths}
