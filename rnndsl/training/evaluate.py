"""`rnndsl eval`: the loss and the metrics that fit the spec.

    language models (cross_entropy of a sequence against the next input)  perplexity, bits per symbol
    classifiers (cross_entropy against a class)                           accuracy
    CTC models                                                            CER, WER (greedy decoding;
                                                                          with a beam, also its own)
    generated sequences with a target (seq2seq, captioning)               exact-sequence accuracy
                                                                          (greedy; with a beam, also its own)

The forward passes run in the model's array module (on the GPU for the cupy backend); only the
per-sequence losses and the argmax of the scored outputs come back to the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import beam as beams, ctcdecode, data
from ..frontend import ir
from ..runtime import device
from ..semantics.inputs import prepare
from ..core import kernels
from ..core.ops import Kind, Op


@dataclass(frozen=True)
class Decoding:
    """How `metrics` decodes: greedy always; with `beam`, also a beam of that width."""
    beam: int | None = None
    alpha: float = 0.0           # length normalisation of the generation beam
    stop: int | None = None      # the class that ends a generated sequence (None: no exact-sequence accuracy)


def decodes(spec: ir.Model) -> str | None:
    """What a beam can decode for this spec: "ctc", "generate" (sequences fed back, with a
    target on their axis to compare with), or None."""
    ctc = _targets(spec)[1]
    return "ctc" if ctc else "generate" if _generated(spec) else None


def metrics(model, params: dict, bound: data.Bound, settings, vocab: data.Vocab | None,
            decoding: Decoding = Decoding()) -> dict:
    out = {"sequences": len(bound.examples) if bound.stream is None else None, "tokens": None}
    losses, hits, seen = [], 0, 0
    edits = {k: [0, 0] for k in ("chars", "words", "chars_beam", "words_beam")}
    exact = [0, 0, 0]                                  # greedy hits, beam hits, sequences
    ce, ctc = _targets(model.spec)
    generated = _generated(model.spec) if bound.stream is None and decoding.stop is not None else None
    carry, params = None, device.to_device(model.xp, params)
    for batch in eval_batches(bound, settings):
        result, final = _forward(model, params, batch, carry)
        carry = final if bound.stream is not None else None      # a stream's windows continue
        losses.append(device.to_host(result["losses"]))
        lengths = batch["lengths"] if isinstance(batch["lengths"], dict) else {model.spec.axes[0]: batch["lengths"]}
        if bound.stream is not None:                   # a stream: count the symbols predicted
            out["tokens"] = (out["tokens"] or 0) + int(np.sum(next(iter(lengths.values()))))
        if ce:
            h, n = _accuracy(result, batch, lengths, *ce)
            hits, seen = hits + h, seen + n
        if ctc:
            _ctc_edits(result, batch, lengths, *ctc, vocab, edits, decoding.beam)
        if generated:
            _exact(model, params, batch, *generated, decoding, exact)
    loss = float(np.mean(np.concatenate(losses)))
    out["loss"] = loss
    if ce and ce[2] and _language_model(model.spec):  # it predicts its own next input
        out["perplexity"] = math.exp(min(loss, 700))
        out["bits_per_symbol"] = loss / math.log(2)
    if ce and seen:
        out["accuracy"] = hits / seen
    if ctc and edits["chars"][1]:
        out.update(_rates(edits, "", vocab))
        if decoding.beam:
            out.update(_rates(edits, "_beam", vocab))
    if generated and exact[2]:
        out["exact_seqs"] = exact[0] / exact[2]
        if decoding.beam:
            out["exact_seqs_beam"] = exact[1] / exact[2]
    return {k: v for k, v in out.items() if v is not None}


def _rates(edits: dict, suffix: str, vocab) -> dict:
    """CER (over class numbers without a vocabulary) and WER (words need a vocabulary)."""
    out = {f"cer{suffix}": edits["chars" + suffix][0] / edits["chars" + suffix][1]}
    if vocab is not None:
        out[f"wer{suffix}"] = edits["words" + suffix][0] / max(1, edits["words" + suffix][1])
    return out


def _language_model(spec: ir.Model) -> bool:
    return spec.generate is not None and bool(spec.generate.feed)


def eval_batches(bound: data.Bound, settings):
    """A stream as parallel streams of at least one window each (fewer than the training
    batch when the text is short), read in order; other data as padded batches of similar
    lengths (the whole set sorted by length: every metric is a sum over sequences, so the
    order is free, and padded steps cost as much as real ones)."""
    if bound.stream is not None:
        steps = settings.bptt or data.DEFAULT_BPTT
        return bound.stream_batches(min(settings.batch, max(1, (len(bound.stream) - 1) // steps)), steps)
    return data.batches(bound, settings.batch, seed=0, bucket=True, pool=len(bound.examples))


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


def _ctc_edits(result, batch, lengths, scores: str, labels: str, blank: int, vocab, edits: dict,
               width: int | None) -> None:
    y = np.asarray(device.to_host(result[scores]), np.float64)       # (T, B, K)
    axes = list(lengths)
    frames, label_len = np.asarray(lengths[axes[0]]), np.asarray(lengths[axes[-1]])
    for b in range(y.shape[1]):
        logp = kernels.log_softmax(np, y[:frames[b], b])
        truth = [int(k) for k in np.asarray(batch[labels])[:label_len[b], b]]
        _edits(edits, "", ctcdecode.greedy(logp, blank), truth, vocab)
        if width:
            _edits(edits, "_beam", ctcdecode.prefix_beam(logp, width, blank)[0][0], truth, vocab)


def _edits(edits: dict, suffix: str, decoded, truth: list, vocab) -> None:
    if vocab is None:                                  # class numbers: an error rate over labels
        _count(edits["chars" + suffix], list(decoded), truth)
        return
    hyp, ref = vocab.decode(list(decoded)), vocab.decode(truth)
    _count(edits["chars" + suffix], hyp, ref)
    _count(edits["words" + suffix], hyp.split(), ref.split())


def _generated(spec: ir.Model) -> tuple | None:
    """(fed input, target, axis) of a spec that generates a sequence that a target on the same
    axis holds the truth of (seq2seq's tgt_out, captioning's cap_out); None for other specs."""
    if spec.generate is None or not spec.generate.feed:
        return None
    fed = spec.generate.feed[0][0]
    axis = next(i.axis for i in spec.inputs if i.name == fed)
    targets = [i.name for i in spec.inputs if i.axis == axis and i.name != fed and i.type.kind is Kind.INDEX]
    return (fed, targets[0], axis) if len(targets) == 1 else None


def _exact(model, params: dict, batch: dict, fed: str, target: str, axis: str, decoding: Decoding,
           exact: list) -> None:
    """Count the examples whose decoded sequence equals the target up to and including its
    stop class, each decoded from its own first fed step (its start symbol) with the other
    inputs as context."""
    steps = np.asarray(batch["lengths"][axis])
    context = {i.name: batch[i.name] for i in model.spec.inputs if i.axis != axis}
    context["lengths"] = batch["lengths"]
    primes = [[int(batch[fed][0, b])] for b in range(len(steps))]
    refs = [_upto(np.asarray(batch[target])[:steps[b], b], decoding.stop) for b in range(len(steps))]
    max_len = model.spec.generate.max_len
    for k, width in enumerate((1, decoding.beam) if decoding.beam else (1,)):
        found = beams.search(model, params, primes, width, max_len, decoding.stop, decoding.alpha, context)
        exact[k] += sum(bool(f) and f[0].ids == r for f, r in zip(found, refs))
    exact[2] += len(refs)


def _upto(ids: np.ndarray, stop: int) -> tuple:
    ids = [int(i) for i in ids]
    return tuple(ids[:ids.index(stop) + 1] if stop in ids else ids)


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
