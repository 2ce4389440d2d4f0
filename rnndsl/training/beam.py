"""Beam search for generation: (model, params, primes, width) -> the likeliest continuations.

The beam holds the `width` best partial sequences by total log-probability. Each step scores
every live hypothesis of every example in one forward pass (one row each), extends each by
every class, and keeps the `width` best extensions per example; an extension ending in the
stop class is finished and leaves the beam, so the beam narrows (the Sutskever et al. 2014 and
Graves 2012 beam). Finished hypotheses are ranked by logp / length^alpha (Wu et al. 2016's
length normalisation without their +5 offset; alpha 0 ranks by the raw log-probability).
With width 1 this is greedy decoding, step for step.

Where the sampler can carry the recurrences (generate.stepwise), a step feeds each row only
its last class and starts from its parent row's carried state; otherwise each step re-runs
the whole sequence so far for every row, as the sampler does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import generate
from ..core import kernels
from ..core.errors import DataError
from ..runtime import device
from ..semantics.inputs import prepare


@dataclass(frozen=True)
class Hypothesis:
    ids: tuple          # the classes generated after the prime, the stop class included if it ended there
    logp: float         # their total log-probability given the prime
    finished: bool      # ended at the stop class (else it reached the length limit)

    def score(self, alpha: float) -> float:
        return self.logp / max(1, len(self.ids)) ** alpha


def search(model, params: dict, primes: list, width: int, length: int, stop: int | None = None,
           alpha: float = 0.0, context: dict | None = None) -> list:
    """For each example e (its prime primes[e], column e of the batched `context`), up to
    `width` hypotheses, best first. Primes must have one length (they are one batch)."""
    _check(model, primes, width, length, alpha)
    rows = _Rows(model, device.to_device(model.xp, model._params(params)), context or {})
    live = [(e, (), 0.0) for e in range(len(primes))]          # (example, ids, log-probability)
    done = [[] for _ in primes]
    logp = rows.scores([list(p) for p in primes], list(range(len(primes))), None)
    for step in range(length):
        live, parents = _advance(live, logp, done, width, stop, step == length - 1)
        if not live:
            break
        seqs = [list(primes[e]) + list(ids) for e, ids, _ in live]
        logp = rows.scores(seqs, [e for e, _, _ in live], parents)
    return [sorted(d, key=lambda h: -h.score(alpha)) for d in done]


def _check(model, primes: list, width: int, length: int, alpha: float) -> None:
    gen = model.spec.generate
    if gen is None or not gen.feed:
        raise DataError(f"{model.spec.name} has no generate: section, so there is nothing to search",
                        "beam search decodes specs that feed an output back, e.g. generate: {feed: {x: y}}")
    if not primes or any(len(p) == 0 for p in primes) or len({len(p) for p in primes}) > 1:
        raise DataError("beam search needs one non-empty prime per example, all of one length",
                        "give a non-empty --prime, or a start token in the spec's generate: section")
    if not (isinstance(width, int) and width >= 1 and length >= 0 and alpha >= 0):
        raise DataError(f"beam width {width}, length {length} and length-norm {alpha}: "
                        "expected a width of 1 or more, a length of 0 or more and alpha 0 or more")


def _advance(live: list, logp: np.ndarray, done: list, width: int, stop: int | None, last: bool) -> tuple:
    """The next live rows and their parents: per example the `width` best extensions of its
    rows (ties to the earlier row, then the lower class, as argmax); finished ones to `done`."""
    owners = np.array([e for e, _, _ in live])
    total = np.array([lp for _, _, lp in live])[:, None] + logp
    nxt, parents = [], []
    for e in dict.fromkeys(owners.tolist()):
        mine = np.flatnonzero(owners == e)
        flat = total[mine].ravel()
        for k in np.argsort(-flat, kind="stable")[:width - len(done[e])]:      # a finished one takes a place
            row, c = mine[k // logp.shape[1]], int(k % logp.shape[1])
            ids, lp = live[row][1] + (c,), float(flat[k])
            if c == stop or last:
                done[e].append(Hypothesis(ids, lp, c == stop))
            else:
                nxt.append((e, ids, lp))
                parents.append(int(row))
    return nxt, parents


class _Rows:
    """Log-probabilities of the next class for rows of hypotheses, one forward pass per call."""

    def __init__(self, model, params: dict, context: dict):
        self.model, self.params, self.context = model, params, context
        self.feed, self.output = model.spec.generate.feed[0]
        self.carried = generate.stepwise(model.spec, self.feed, self.output)
        self.carry = None

    def scores(self, seqs: list, owners: list, parents: list | None) -> np.ndarray:
        """(rows, classes): `seqs[r]` (the whole sequence so far) scored for example owners[r];
        with `parents` and a carry, only the last class is fed, from the parent rows' state."""
        step = parents is not None and self.carry is not None
        fed = np.asarray([s[-1:] if step else s for s in seqs], np.int64).T
        carry = {k: v[self.model.xp.asarray(parents)] for k, v in self.carry.items()} if step else None
        batch = prepare(self.model.spec, generate.rows_batch(self.model.spec, self.feed, fed, self.context, owners))
        tape = self.model.module.forward(self.params, batch.arrays, batch.lengths, self.model.dtype, carry)
        final = tape["_final"]
        usable = self.carried is not None and self.carried <= set(final)
        self.carry = {k: final[k] for k in self.carried} if usable else None
        scores = np.asarray(device.to_host(tape[self.output][fed.shape[0] - 1]), np.float64)
        return kernels.log_softmax(np, scores)
