"""A `Dataset` matched to a spec's inputs (`bind` -> `Bound`), then cut into padded time-major
batches exactly as `inputs.prepare` takes them (`batches`, `stream_batches`).

`bind` matches by the inputs' types: a language model (onehot/index sequence + index target on
its axis), CTC (float frames + index labels on a second axis), classification (float sequence
or image + static index label) and captioning (image + caption pair), and named arrays (each
input from the array of its name). A mismatch is a DataError saying which input the data
cannot feed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...semantics import inputs
from ...frontend import ir
from ...core import limits
from .dataset import END, START, Dataset, Example, Vocab
from ...core.errors import DataError
from ...core.ops import Kind
from ...runtime.params import check_memory as check_param_memory

DEFAULT_BPTT = 25       # window length of a language model whose spec sets no train: bptt


@dataclass(frozen=True)
class Bound:
    """A dataset matched to a spec: examples keyed by the spec's input names."""
    model: str
    axes: dict                          # input name -> its axis, None for a static input
    examples: tuple
    stream: np.ndarray | None = None    # language models: the whole id stream
    names: tuple = ()                   # language models: (input, target)

    def stream_batches(self, batch: int, bptt: int):
        """A language model's stream as `batch` parallel streams in windows (see stream_batches)."""
        if self.stream is None:
            raise DataError(f"{self.model}: only a language model's data is one stream")
        return stream_batches(self.stream, batch, bptt, self.names, self.axes[self.names[0]])


def bind(model: ir.Model, dataset: Dataset, length: int | None = None) -> Bound:
    """Match `dataset` to `model`'s inputs by their types; a language model's stream is cut
    into windows of `length` steps (default: the spec's train bptt). DataError says which
    input the data cannot feed."""
    if dataset.kind == "text":
        return _bind_text(model, dataset, length or dict(model.train).get("bptt", DEFAULT_BPTT))
    binders = {"speech": _bind_speech, "images": _bind_images, "arrays": _bind_arrays}
    return binders[dataset.kind](model, dataset)


def check_memory(model, dataset: Dataset, batch: int, bptt: int | None) -> None:
    """Before training allocates anything (a compiled `model`): a SpecError naming the size
    when its parameters with their training state, or one batch, would not fit in memory."""
    check_param_memory(model.spec, model.dtype)
    check_batch_memory(model.spec, bind(model.spec, dataset, bptt), batch, bptt, model.dtype.itemsize)


def check_batch_memory(model: ir.Model, bound: Bound, batch: int, bptt: int | None, itemsize: int = 8) -> None:
    """Before training allocates anything: a SpecError when one batch of `bound` (its longest
    sequences, or bptt steps of a stream, `batch` of them) would not fit in the machine's memory,
    a vocabulary sized from data making every output as wide as it (inputs.batch_bytes)."""
    if bound.stream is not None:
        steps, batch = {a: bptt or DEFAULT_BPTT for a in model.axes}, batch
    else:
        steps = {a: max([len(e[n]) for e in bound.examples for n, ax in bound.axes.items() if ax == a] or [1])
                 for a in model.axes}
        batch = min(batch, len(bound.examples))
    dims = ", ".join(f"{n}={d.value}" for n, d in model.dims)
    limits.check_memory(inputs.batch_bytes(model, steps, batch, itemsize),
                        f"one batch of {batch} " + (f"sequences of {max(steps.values()):,} steps" if steps else "examples")
                        + f" of {model.name} ({dims})",
                        "train with a smaller batch or bptt (--set batch=... --set bptt=...), or smaller dims")


def check_class_indices(model: ir.Model, dataset: Dataset) -> None:
    """Every class index a file holds within its input's classes, checked before training
    starts (a bad label deep in a file would otherwise stop the run at its batch), the examples
    numbered as in the file. Text and transcripts need no check: their ids come from a
    vocabulary whose size bind() checks against the spec."""
    if dataset.kind not in ("images", "arrays"):
        return
    bound = bind(model, dataset)
    for inp in model.inputs:
        if inp.type.classes is None:
            continue
        n = inp.type.classes.value
        for i, e in enumerate(bound.examples):
            values = np.asarray(e[inp.name])
            bad = values[(values < 0) | (values >= n)]
            if bad.size:
                big = max([int(np.max(x[inp.name])) for x in bound.examples if np.size(x[inp.name])] + [n - 1])
                name = inp.type.classes.name
                hint = (f"use --set {name}={big + 1} (the largest index in the file is {big})"
                        if bad.max() >= n and name else "class indices count from 0")
                raise DataError(f"{dataset.source or model.name}: {inp.name} of example {i} holds class "
                                f"{int(bad[0])}; {model.name} declares {n} classes, 0 to {n - 1}", hint)


def _describe(inp: ir.Input) -> str:
    floats = inp.type.kind is Kind.FLOAT
    kind = f"float {inp.type}" if floats else f"{inp.type.kind.value}({inp.type.classes})"
    return f"{inp.name}: {kind} {'on axis ' + inp.axis if inp.axis else 'static'}"


class CannotFeed(DataError):
    """bind's refusal to feed an input from the data. `declared` words it again for the spec
    as its author declared it, naming the dims that were sized from the data's vocabulary
    (those values are the data's, not the author's)."""

    def __init__(self, model: ir.Model, dataset: Dataset, inp: ir.Input | None, holds: str, feeds: str,
                 sized: dict | None = None):
        self.parts = (dataset, inp, holds, feeds)
        what = f"input {_describe(inp)}" if inp else "its inputs"
        takes = "; ".join(_describe(i) for i in model.inputs)
        super().__init__(f"{model.name}: {what} cannot be fed from {dataset.source or dataset.kind}, "
                         f"which holds {holds}", f"{dataset.kind} data feeds {feeds}; {model.name} takes "
                         + takes + _sized_note(sized or {}))

    def declared(self, model: ir.Model, sized: dict) -> "CannotFeed":
        """The same refusal described with `model`, the spec before `sized` (dim -> the
        vocabulary's size) was applied to it."""
        dataset, inp, holds, feeds = self.parts
        inp = next((i for i in model.inputs if inp is not None and i.name == inp.name), None)
        return CannotFeed(model, dataset, inp, holds, feeds, sized)


def _sized_note(sized: dict) -> str:
    if not sized:
        return ""
    names = ", ".join(f"{name}={value}" for name, value in sorted(sized.items()))
    return (f" (as the spec declares them; the data's vocabulary would set {names}, which is done only "
            "for data that can feed the spec)")


def _cannot(model: ir.Model, dataset: Dataset, inp: ir.Input | None, holds: str, feeds: str) -> DataError:
    return CannotFeed(model, dataset, inp, holds, feeds)


def _check_classes(model: ir.Model, inputs, count: int, what: str) -> None:
    for inp in inputs:
        dim = inp.type.classes
        if dim.value < count:
            raise DataError(f"{model.name}: input {_describe(inp)} has {dim.value} classes, but {count} are "
                            f"needed for {what}", f"use --set {dim.name}={count}" if dim.name else "")


def _lm_pair(model: ir.Model) -> tuple | None:
    """(input, target) of a language model: an index target read by the loss and one other
    onehot/index input on its axis."""
    reads = {getattr(e, "var", None) for e in ir.walk(model.loss)}
    ints = [i for i in model.inputs if i.axis and i.type.kind is not Kind.FLOAT]
    for target in (i for i in ints if i.type.kind is Kind.INDEX and i.name in reads):
        inputs = [i for i in ints if i.axis == target.axis and i is not target]
        if len(inputs) == 1:
            return inputs[0], target
    return None


def windows(ids: np.ndarray, length: int) -> list:
    """(x, target) pairs cutting a stream into consecutive windows of up to `length` steps,
    target one step ahead of x; every token but the first is a target once."""
    last = len(ids) - 1
    return [(ids[s:min(s + length, last)], ids[s + 1:s + length + 1]) for s in range(0, last, length)]


def _bind_text(model: ir.Model, dataset: Dataset, length: int) -> Bound:
    pair = _lm_pair(model)
    if pair is None or len(model.inputs) != 2:
        rest = [i for i in model.inputs if i not in (pair or ())]
        other = next((i for i in rest if not i.axis or i.type.kind is Kind.FLOAT), rest[0] if rest else None)
        raise _cannot(model, dataset, other, f"one stream of {len(dataset.stream)} token ids",
                      "a language model: a onehot or index sequence input and an index target on "
                      "its axis (x = ids[:-1], target = ids[1:])")
    _check_classes(model, pair, len(dataset.vocab), "the text's vocabulary")
    x, target = pair
    examples = tuple({x.name: a, target.name: b} for a, b in windows(dataset.stream, length))
    return Bound(model.name, {x.name: x.axis, target.name: x.axis}, examples,
                 dataset.stream, (x.name, target.name))


def _bind_speech(model: ir.Model, dataset: Dataset) -> Bound:
    frames = next((i for i in model.inputs if i.axis and i.type.kind is Kind.FLOAT and i.type.rank == 1), None)
    labels = next((i for i in model.inputs if i.axis and frames and i.axis != frames.axis
                   and i.type.kind is Kind.INDEX), None)
    other = next((i for i in model.inputs if i not in (frames, labels)), None)
    n, stats = len(dataset.examples), dataset.stats
    if not frames or not labels or other:
        raise _cannot(model, dataset, other, f"{n} clips of {stats.features} frames (T, {stats.n_features}) "
                      f"and character labels (U,)", "CTC: a float sequence input [F] of frames and an "
                      "index sequence of labels on a second axis")
    if frames.type.dims != (stats.n_features,):
        dim = frames.type.shape[0]
        raise DataError(f"{model.name}: input {_describe(frames)} takes {dim.value} features per frame, "
                        f"but {dataset.source} has {stats.n_features} {stats.features} features",
                        f"use --set {dim.name}={stats.n_features}, or load the data with "
                        f"n_features={dim.value}")
    _check_classes(model, [labels], len(dataset.vocab), "the transcripts' alphabet with the blank")
    examples = tuple({frames.name: e["frames"], labels.name: e["labels"]} for e in dataset.examples)
    for number, e in enumerate(dataset.examples):
        y = e["labels"]
        need = len(y) + int((y[1:] == y[:-1]).sum())
        if len(e["frames"]) < need:
            raise DataError(f"{dataset.source}: clip {number} has {len(e['frames'])} frames, fewer than "
                            f"the {need} that CTC needs for its {len(y)} labels")
    return Bound(model.name, {frames.name: frames.axis, labels.name: labels.axis}, examples)


def _bind_images(model: ir.Model, dataset: Dataset) -> Bound:
    """Images feed a static float input of their size, a float sequence read row by row, a
    static index label, and a caption pair (<start> + caption, caption + <end>)."""
    c, h, w = dataset.examples[0]["image"].shape
    pair = _lm_pair(model) if "caption" in dataset.examples[0] else None
    take = {inp.name: _image_field(inp, (c, h, w), pair, dataset.vocab) for inp in model.inputs}
    missing = next((i for i in model.inputs if take[i.name] is None), None)
    if missing:
        captions = " and captions" if "caption" in dataset.examples[0] else ""
        raise _cannot(model, dataset, missing,
                      f"{len(dataset.examples)} images ({c}, {h}, {w}) with labels{captions}",
                      f"a static float input of {c * h * w} values, a float sequence [{c * w}] of rows, "
                      "a static index label, and captions (a onehot/index sequence and an index target)")
    if not any(i.type.kind is Kind.FLOAT for i in model.inputs):
        raise DataError(f"{model.name}: no input takes the images of {dataset.source}",
                        f"images feed a static float input of {c * h * w} values or a float sequence "
                        f"[{c * w}] of rows; {model.name} takes " + "; ".join(map(_describe, model.inputs)))
    labels = [i for i in model.inputs if i.type.kind is Kind.INDEX and not i.axis]
    _check_classes(model, labels, 1 + max(int(e["label"]) for e in dataset.examples), "the labels")
    _check_classes(model, pair or (), len(dataset.vocab or ()), "the captions' vocabulary")
    examples = tuple({name: f(e) for name, f in take.items()} for e in dataset.examples)
    return Bound(model.name, {i.name: i.axis for i in model.inputs}, examples)


def _image_field(inp: ir.Input, chw: tuple, pair, vocab: Vocab | None):
    """How `inp` is read from an image example, or None when it cannot be."""
    c, h, w = chw
    if inp.type.kind is Kind.FLOAT and not inp.axis and math.prod(inp.type.dims) == c * h * w:
        return lambda e: e["image"].reshape(inp.type.dims)
    if inp.type.kind is Kind.FLOAT and inp.axis and inp.type.dims == (c * w,):
        return lambda e: e["image"].transpose(1, 0, 2).reshape(h, c * w)
    if inp.type.kind is Kind.INDEX and not inp.axis:
        return lambda e: e["label"]
    if pair and inp is pair[0]:
        return lambda e: np.concatenate([[vocab.index(START)], e["caption"]])
    if pair and inp is pair[1]:
        return lambda e: np.concatenate([e["caption"], [vocab.index(END)]])
    return None


def _bind_arrays(model: ir.Model, dataset: Dataset) -> Bound:
    """Each input from the array of its name, cut to `lengths` / `lengths_<axis>` where given;
    every array's dtype and shape and every length checked first."""
    first = dataset.examples[0]
    for inp in model.inputs:
        if inp.name not in first:
            held = ", ".join(f"{k} {v.shape}" for k, v in first.items())
            raise _cannot(model, dataset, inp, f"arrays {held}", "each input from the array of its name")
        _check_array(dataset, inp, np.asarray(first[inp.name]))
    lengths = {axis: _lengths_of(model, dataset, axis) for axis in model.axes}
    missing = [a for a, name in lengths.items() if name is None]
    if missing and len(missing) < len(lengths):     # padded on one axis, silently full on another
        given = ", ".join(name for name in lengths.values() if name)
        raise DataError(f"{dataset.source}: {given} gives the lengths on one axis but no lengths_{missing[0]} "
                        f"gives them on {missing[0]}, so every sequence there would count its padding",
                        f"save lengths_{missing[0]} too (np.full(N, T) if none is padded)")

    def cut(e: Example, inp: ir.Input) -> np.ndarray:
        known = inp.axis and lengths[inp.axis] is not None
        return e[inp.name][:int(e[lengths[inp.axis]])] if known else e[inp.name]
    examples = tuple({i.name: cut(e, i) for i in model.inputs} for e in dataset.examples)
    return Bound(model.name, {i.name: i.axis for i in model.inputs}, examples)


def _check_array(dataset: Dataset, inp: ir.Input, a: np.ndarray) -> None:
    """One example of an input's array: the dtype and shape the input takes."""
    floats = inp.type.kind is Kind.FLOAT
    dims = inp.type.dims if floats else ()
    rank = (1 if inp.axis else 0) + len(dims)
    fits = a.ndim == rank and a.shape[rank - len(dims):] == dims and (not inp.axis or a.shape[0] >= 1)
    if fits and a.dtype.kind in ("fiu" if floats else "iu"):
        return
    want = "(" + ", ".join(["N"] + ["T"] * bool(inp.axis) + [str(d) for d in dims]) + ("," if rank == 0 else "") + ")"
    what = "numbers" if floats else "whole-number class indices"
    raise DataError(f"{dataset.source}: array {inp.name!r} holds {a.dtype} shaped {(len(dataset.examples),) + a.shape}; "
                    f"input {_describe(inp)} takes {what} shaped {want}, one row per example",
                    f"save it as np.savez(path, {inp.name}=array) with that shape"
                    + ("; T steps, padded, with lengths giving each row's own" if inp.axis else ""))


def _lengths_of(model: ir.Model, dataset: Dataset, axis: str) -> str | None:
    """The name of `axis`'s lengths array, checked: one whole number per example, from 1 to the
    padded length T of the arrays on the axis (which must agree). None if there is none."""
    first = dataset.examples[0]
    steps = {i.name: np.shape(first[i.name])[0] for i in model.inputs if i.axis == axis}
    if len(set(steps.values())) > 1:
        raise DataError(f"{dataset.source}: the arrays on axis {axis} are padded to different lengths: {steps}",
                        "pad every array on one axis to the same T")
    unknown = sorted(k for k in first if k.startswith("lengths_") and k[len("lengths_"):] not in model.axes)
    several = "lengths" in first and len(model.axes) > 1
    if unknown or several:
        raise DataError(f"{dataset.source}: array {(unknown or ['lengths'])[0]!r} names no axis of {model.name}",
                        "name lengths arrays lengths_<axis>, for the axes " + ", ".join(model.axes))
    name = next((n for n in (f"lengths_{axis}", "lengths") if n in first), None)
    if name is not None:
        _check_lengths(dataset, name, next(iter(steps.values()), 1))
    return name


def _check_lengths(dataset: Dataset, name: str, steps: int) -> None:
    values = np.asarray([e[name] for e in dataset.examples])
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise DataError(f"{dataset.source}: {name} holds {values.dtype} shaped {values.shape}; it takes one "
                        "whole number per example, shaped (N,)",
                        f"save it as integers: {name}=np.asarray(lengths, dtype=np.int64)")
    bad = (values < 1) | (values > steps)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{dataset.source}: {name}[{row}] is {values[row]}; a length lies from 1 to {steps}, "
                        "the padded length of the arrays it measures", "each row's length counts its real steps")


# ---- batches ----------------------------------------------------------------------------------

def collate(examples: list, axes: dict) -> dict:
    """One batch as inputs.prepare takes it: sequences zero-padded to (T, B, ...), static
    values (B, ...), and "lengths": {axis: (B,) ints}."""
    batch, lengths = {}, {}
    for name, axis in axes.items():
        values = [np.asarray(e[name]) for e in examples]
        if axis is None:
            batch[name] = np.stack(values)
            continue
        n = np.array([len(v) for v in values], np.int64)
        if axis in lengths and not np.array_equal(lengths[axis], n):
            raise DataError(f"inputs on axis {axis} differ in length within an example")
        lengths[axis], batch[name] = n, _pad(values, int(n.max()))
    batch["lengths"] = lengths
    return batch


def _pad(values: list, steps: int) -> np.ndarray:
    out = np.zeros((steps, len(values)) + values[0].shape[1:], values[0].dtype)
    for b, v in enumerate(values):
        out[:len(v), b] = v
    return out


def batches(bound: Bound, batch_size: int, seed: int = 0, bucket: bool = True, pool: int = 50):
    """Padded batches of `bound`'s examples, in a seeded random order. With `bucket`, each
    pool of `pool` batches' worth of shuffled examples is sorted by length before it is cut
    (so a batch holds similar lengths, little padding), and the batches are shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bound.examples))
    if bucket:
        size = [sum(len(e[n]) for n, a in bound.axes.items() if a) for e in bound.examples]
        chunks = [order[s:s + batch_size * pool] for s in range(0, len(order), batch_size * pool)]
        order = np.concatenate([c[np.argsort([size[i] for i in c], kind="stable")] for c in chunks])
    groups = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if bucket:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for group in groups:
        yield collate([bound.examples[i] for i in group], bound.axes)


def stream_batches(ids: np.ndarray, batch: int, bptt: int, names: tuple = ("x", "target"), axis: str = "t"):
    """A stream cut into `batch` contiguous parallel streams, yielded in order as windows of
    up to `bptt` steps {x: (T, B), target: (T, B), "lengths": {axis: (B,)}}; window k+1
    continues window k in every column, so a trainer carries the state across."""
    steps = (len(ids) - 1) // batch
    if steps < 1:
        raise DataError(f"a stream of {len(ids)} tokens is too short for {batch} parallel streams")
    rows = np.asarray(ids)[np.arange(batch)[:, None] * steps + np.arange(steps + 1)[None, :]]
    for s in range(0, steps, bptt):
        n = min(bptt, steps - s)
        yield {names[0]: rows[:, s:s + n].T.copy(), names[1]: rows[:, s + 1:s + n + 1].T.copy(),
               "lengths": {axis: np.full(batch, n, np.int64)}}
