"""`rnndsl eval`: the loss and the metrics that fit the spec.

    language models (cross_entropy of a sequence against the next input)  perplexity, bits per symbol
    classifiers (cross_entropy against a class)                           accuracy
    CTC models                                                            CER, WER (greedy decoding)

The forward passes run in the model's array module (on the GPU for the cupy backend); only the
per-sequence losses and the argmax of the scored outputs come back to the host.
"""
from __future__ import annotations

import math

import numpy as np

from . import data
from ..frontend import ir
from ..runtime import device
from ..semantics.inputs import prepare
from ..core.ops import Op


def metrics(model, params: dict, bound: data.Bound, settings, vocab: data.Vocab | None) -> dict:
    out = {"sequences": len(bound.examples) if bound.stream is None else None, "tokens": None}
    losses, hits, seen, edits = [], 0, 0, {"chars": [0, 0], "words": [0, 0]}
    ce, ctc = _targets(model.spec)
    carry, params = None, device.to_device(model.xp, params)
    for batch in _eval_batches(bound, settings):
        result, final = _forward(model, params, batch, carry)
        carry = final if bound.stream is not None else None      # a stream's windows continue
        losses.append(device.to_host(result["losses"]))
        lengths = batch["lengths"] if isinstance(batch["lengths"], dict) else {model.spec.axes[0]: batch["lengths"]}
        if bound.stream is not None:                   # a stream: count the symbols predicted
            out["tokens"] = (out["tokens"] or 0) + int(np.sum(next(iter(lengths.values()))))
        if ce:
            h, n = _accuracy(result, batch, lengths, *ce)
            hits, seen = hits + h, seen + n
        if ctc and vocab is not None:
            _ctc_edits(result, batch, lengths, *ctc, vocab, edits)
    loss = float(np.mean(np.concatenate(losses)))
    out["loss"] = loss
    if ce and ce[2] and _language_model(model.spec):  # it predicts its own next input
        out["perplexity"] = math.exp(min(loss, 700))
        out["bits_per_symbol"] = loss / math.log(2)
    if ce and seen:
        out["accuracy"] = hits / seen
    if ctc and vocab is not None and edits["chars"][1]:
        out["cer"] = edits["chars"][0] / edits["chars"][1]
        out["wer"] = edits["words"][0] / max(1, edits["words"][1])
    return {k: v for k, v in out.items() if v is not None}


def _language_model(spec: ir.Model) -> bool:
    return spec.generate is not None and bool(spec.generate.feed)


def _eval_batches(bound: data.Bound, settings):
    """A stream as parallel streams of at least one window each (fewer than the training
    batch when the text is short), read in order; other data as padded batches."""
    if bound.stream is not None:
        steps = settings.bptt or data.DEFAULT_BPTT
        return bound.stream_batches(min(settings.batch, max(1, (len(bound.stream) - 1) // steps)), steps)
    return data.batches(bound, settings.batch, seed=0, bucket=False)


def _forward(model, params: dict, batch: dict, carry: dict | None) -> tuple:
    """(every variable and the per-sequence losses, the carried states at the end): the
    forward pass started from `carry`, the previous window's end, as training does.
    Padded steps are not zeroed; the metrics below mask them by the batch's lengths."""
    inputs = prepare(model.spec, batch)
    tape = model.module.forward(params, inputs.arrays, inputs.lengths, model.dtype, carry)
    out = {eq.name: tape[eq.name] for eq in model.spec.equations}
    return {**out, "losses": tape["_loss"]}, tape["_final"]


def _targets(spec: ir.Model) -> tuple:
    """(output, target, per_step) of the loss's cross_entropy, and (scores, labels) of its ctc."""
    ce = ctc = None
    for e in ir.walk(spec.loss):
        if isinstance(e, ir.Apply) and e.op is Op.CROSS_ENTROPY and ce is None:
            y, t = e.args
            if isinstance(y, (ir.Read, ir.ReadStatic)) and isinstance(t, (ir.Read, ir.ReadStatic)):
                ce = (y.var, t.var, isinstance(y, ir.Read))
        if isinstance(e, ir.Apply) and e.op is Op.CTC:
            ctc = (e.args[0].var, e.args[1].var, int(e.attr.get("blank", 0)))
    return ce, ctc


def _accuracy(result: dict, batch: dict, lengths: dict, output: str, target: str, per_step: bool) -> tuple:
    guess = device.to_host(result[output].argmax(axis=-1))
    truth = np.asarray(batch[target])
    if guess.ndim == 2:                                # per step: only the real steps count
        axis = next(iter(lengths))
        valid = np.arange(guess.shape[0])[:, None] < np.asarray(lengths[axis])[None, :]
        return int(((guess == truth) & valid).sum()), int(valid.sum())
    return int((guess == truth).sum()), int(truth.size)


def _ctc_edits(result, batch, lengths, scores: str, labels: str, blank: int, vocab, edits: dict) -> None:
    greedy = device.to_host(result[scores].argmax(axis=-1))     # (T, B): the best class at each step
    axes = list(lengths)
    frames, label_len = np.asarray(lengths[axes[0]]), np.asarray(lengths[axes[-1]])
    for b in range(greedy.shape[1]):
        best = greedy[:frames[b], b]
        decoded = [int(k) for i, k in enumerate(best) if k != blank and (i == 0 or k != best[i - 1])]
        truth = [int(k) for k in np.asarray(batch[labels])[:label_len[b], b]]
        hyp, ref = vocab.decode(decoded), vocab.decode(truth)
        _count(edits["chars"], hyp, ref)
        _count(edits["words"], hyp.split(), ref.split())


def _count(acc: list, hyp, ref) -> None:
    acc[0] += edit_distance(hyp, ref)
    acc[1] += len(ref)


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
