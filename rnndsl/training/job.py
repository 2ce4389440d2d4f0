"""A training job resolved: spec + data + --set -> the compiled model, bound data and settings.

    prepare   the spec (read once: a path, YAML text, or a run's checked spec.yaml as a Source),
              the data, the dims from the data (vocabulary size), the compiled model, the bound
              training and validation data, the settings, and what run.json records

A new run trains in float32 (DTYPE), as PyTorch and the other frameworks do; float64 is for
gradcheck and for whoever asks (train --dtype float64). A run's recorded dtype is what resume,
sample and eval compile with.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data, optim, runinfo
from .. import backends
from ..frontend.settings import TRAIN_KEYS
from ..core.errors import DataError, Source, SpecError, did_you_mean
from ..pipeline import compile as compile_spec
from ..runtime import device
from ..pipeline import loads_spec
from ..frontend.spec import read_text


DTYPE = "float32"          # a new run's precision unless told otherwise


@dataclass
class Job:
    """Everything a run needs, resolved."""
    model: object                       # CompiledModel
    settings: optim.Settings
    train: data.Bound
    valid: data.Bound | None
    info: dict                          # what run.json records
    spec_text: str


def split_settings(pairs: dict, spec) -> tuple:
    """--set pairs -> (dims, training settings), by name; SpecError for a key that is neither."""
    for key in pairs:
        if key not in TRAIN_KEYS and key not in spec.dim:
            raise SpecError.at(None, f"--set {key}: not a dim of {spec.name} or a training setting",
                               did_you_mean(key, [*spec.dim, *TRAIN_KEYS])
                               or f"dims: {', '.join(spec.dim)}; training settings: {', '.join(TRAIN_KEYS)}")
    dims = {k: v for k, v in pairs.items() if k not in TRAIN_KEYS}
    return dims, {k: v for k, v in pairs.items() if k in TRAIN_KEYS}


def spec_source(spec) -> Source:
    """The spec's text, read once: a Source as given, YAML text (a str with a line break that
    names no file: a run's folder may have one in its name), or a path."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, str) and "\n" in spec and not os.path.lexists(spec):
        return Source("<spec>", spec)
    return read_text(spec)


def prepare(spec_path, data_path=None, sets: dict | None = None, backend: str | None = None,
            info: dict | None = None, settings: optim.Settings | None = None, hold_out: bool = True,
            loader: dict | None = None, dtype: str | None = None) -> Job:
    """Load the data, size the spec's class dims from its vocabulary, compile, bind. With
    `info` (a run's run.json) the run's vocabulary, feature statistics and dtype are reused.
    Without `hold_out` all the data is in `train` (eval on a test set). A backend that cannot
    run here (no cupy, no GPU) is refused first: device.BackendUnavailable."""
    backend = backend or backends.default()
    device.require(backend)
    dtype = _dtype(dtype, info)
    source = spec_source(spec_path)
    sets = dict(sets or {})
    probe = loads_spec(source.text, source.path)     # as written: is it the embedded hello's spec?
    dims, train_sets = split_settings(sets, probe)
    spec = loads_spec(source.text, source.path, dims=dims)
    loader = dict(loader or (info or {}).get("loader") or {})
    dataset = _dataset(spec, data_path, info, _is_hello(probe), loader)
    check_range(dataset, dtype)
    sized = {k: v for k, v in _dims_from_data(spec, dataset, info).items() if k not in dims}
    dims = {**sized, **dims}
    model = compile_spec(loads_spec(source.text, source.path, dims=dims or None), backend=backend, dtype=dtype)
    settings = settings or optim.settings_from(model.spec.train, train_sets)
    bptt = settings.bptt or data.DEFAULT_BPTT
    try:                                     # the first bindings: whether the data feeds the spec at all
        data.check_class_indices(model.spec, dataset)       # the whole file, before the split reorders it
        data.check_memory(model, dataset, settings.batch, bptt)     # estimate first: parameters and a batch
    except data.CannotFeed as refused:       # described as declared, not with dims sized from this data
        raise refused.declared(spec, sized) from None
    train_part, valid_part = _split(dataset, settings) if hold_out else (dataset, None)
    # the data's absolute path: --resume and eval may run from another folder
    record = {"spec": source.path, "data": str(Path(data_path).resolve()) if data_path else "<embedded hello>",
              "dims": {k: d.value for k, d in model.spec.dims}, "settings": settings.as_dict(),
              "vocab": dataset.vocab.to_json() if dataset.vocab else None,
              "stats": dataset.stats.to_json() if dataset.stats else None, "backend": backend,
              "dtype": dtype, "loader": _relevant(loader, dataset.kind)}
    return Job(model, settings, data.bind(model.spec, train_part, bptt),
               data.bind(model.spec, valid_part, bptt) if valid_part else None, record, source.text)


READS = {"text": ("level",), "speech": ("features",)}      # the loader settings each kind of data uses


def _relevant(loader: dict, kind: str) -> dict:
    """The loader settings the data's kind used: a text run records its level, not features."""
    return {k: v for k, v in loader.items() if k in READS.get(kind, ())}


def _dtype(dtype: str | None, info: dict | None) -> str:
    """The one asked for, else the run's (info), else DTYPE; ValueError naming the choices."""
    dtype = dtype or (info["dtype"] if info else DTYPE)
    if dtype not in runinfo.DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; a run trains in {' or '.join(runinfo.DTYPES)}")
    return dtype


def check_range(dataset: data.Dataset, dtype: str) -> None:
    """Float data must fit the run's dtype: 1e200 is inf in float32, and training would only
    say that the loss became nan."""
    top = np.finfo(dtype).max
    for example in dataset.examples:
        for name, a in example.items():
            if isinstance(a, np.ndarray) and a.dtype.kind == "f" and np.finfo(a.dtype).max > top:
                big = np.abs(a[np.isfinite(a)])
                if big.size and big.max() > top:
                    raise DataError(f"{dataset.source or 'the data'}: {name} holds {big.max():.3g}, beyond "
                                    f"{dtype}'s range (largest {top:.3g})",
                                    "scale the data down, or train with --dtype float64")


def _dataset(spec, data_path, info: dict | None, hello: bool, loader: dict) -> data.Dataset:
    if data_path is None:
        if info is None and not hello:
            raise DataError(f"{spec.name} needs training data", "give --data PATH (text, a speech manifest, "
                            "an .npz); the embedded data is 'hello' over h, e, l, o, for specs with 4 symbols "
                            "such as specs/char_rnn.yaml")
        return data.embedded_hello()
    vocab = data.Vocab.from_json(info["vocab"]) if info and info.get("vocab") else None
    stats = data.FeatureStats.from_json(info["stats"]) if info and info.get("stats") else None
    return data.load(data_path, spec, level=loader.get("level", "char"), vocab=vocab, stats=stats,
                     features=loader.get("features", "mfcc"))


def _is_hello(spec) -> bool:
    """A language model over 4 symbols as its file declares it (before --set V=...)."""
    pair = [i for i in spec.inputs if i.axis]
    return len(pair) == 2 and all(i.type.classes is not None and i.type.classes.value == 4 for i in pair)


def _dims_from_data(spec, dataset: data.Dataset, info: dict | None) -> dict:
    """A class count that is a plain dim (V, K) takes the vocabulary's size."""
    if dataset.vocab is None:
        return {}
    names = {i.type.classes.name for i in spec.inputs if i.type.classes is not None and i.axis}   # sequences
    # of symbols (text, transcripts, captions); a static label's classes are the data's own
    return {n: len(dataset.vocab) for n in names if n in spec.dim}


MIN_TO_HOLD_OUT = {"text": 1000, "default": 20}     # tokens of a text, or examples


def _split(dataset: data.Dataset, settings: optim.Settings) -> tuple:
    """(train, validation): 10% held out, unless the data is too small to spare any
    (the embedded "hello" trains on all of itself)."""
    size = len(dataset.stream) if dataset.kind == "text" else len(dataset.examples)
    if size < MIN_TO_HOLD_OUT.get(dataset.kind, MIN_TO_HOLD_OUT["default"]):
        return dataset, None
    return dataset.split(0.1, settings.seed)
