"""run.json: what a run records besides its spec and checkpoint, checked field by field.

    {"rnndsl_run": 1,                      the marker: rnndsl wrote this folder, in this format
     "spec": PATH, "data": PATH | "<embedded hello>", "backend": "numpy", "dtype": "float32",
     "dims": {NAME: SIZE}, "settings": {every training setting},
     "vocab": JSON text | null, "stats": JSON text | null, "loader": {"level": .., "features": ..}}

`read` returns the record only when every field has the type and range rnndsl writes, so the
code that uses it (resume, sample, eval) meets no surprise; otherwise a DataError names the
file, the key, what was expected and what is there. A field added after format 1 was first
written (dtype) has the value an older rnndsl implied when it is missing (IMPLIED).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from . import data, optim
from .data.audio import FEATURES
from ..frontend.settings import TRAIN_KEYS, Settings
from ..core.errors import DataError, SpecError
from .. import backends
from .runfiles import read_text

MARKER, FORMAT = "rnndsl_run", 1
MAX_BYTES = 64 << 20                # a vocabulary of 200,000 words is a few MB
MAX_DIM = 1 << 31
HINT = "rnndsl train writes run.json; restore it as it was, or train again"
DTYPES = ("float32", "float64")
# what a run written before a field existed did: rnndsl trained in float64 until runs recorded it
IMPLIED = {"dtype": "float64"}


def read(path: Path) -> dict:
    """The checked record of a run's run.json at `path`."""
    info = _parse(path)
    if not isinstance(info, dict) or MARKER not in info:
        raise DataError(f"{path.parent} is not marked as an rnndsl run (its run.json has no "
                        f"\"{MARKER}\" key): it was written by an older rnndsl, or by something else",
                        "give a folder that this rnndsl's `train --out` wrote, or train again")
    if info[MARKER] != FORMAT:
        raise DataError(f"{path}: run format {info[MARKER]!r:.20}; this rnndsl reads format {FORMAT}",
                        "use the rnndsl version that wrote it")
    info = {**IMPLIED, **info}
    _check_keys(path, info)
    for key, check in FIELDS.items():
        problem = check(info[key])
        if problem:
            raise DataError(f"{path}: {key}: {problem}", HINT)
    return info


def is_marked(path: Path) -> bool:
    """Whether `path` is a run.json rnndsl wrote (a regular file, JSON, with the marker)."""
    try:
        info = _parse(path)
    except DataError:
        return False
    return isinstance(info, dict) and MARKER in info


def _parse(path: Path):
    text = read_text(path, MAX_BYTES)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path} is not valid JSON ({str(exc)[:80]})", HINT) from None


def _check_keys(path: Path, info: dict) -> None:
    unknown = sorted(set(info) - set(FIELDS) - {MARKER})
    missing = [k for k in FIELDS if k not in info]
    if unknown or missing:
        what = ([f"unknown key {unknown[0]!r}"] if unknown else []) + \
               ([f"no {', '.join(missing)}"] if missing else [])
        raise DataError(f"{path}: {'; '.join(what)}; a run records {', '.join(FIELDS)}", HINT)


# ---- the fields (each check returns "" when the value is fine) --------------------------------

def _text(value) -> str:
    return "" if isinstance(value, str) else f"expected text, got {_short(value)}"


def _dims(value) -> str:
    if not isinstance(value, dict):
        return f"expected a mapping of dims to sizes, got {_short(value)}"
    for name, size in value.items():
        if not (isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= MAX_DIM):
            return f"{name} must be a whole number from 1 to {MAX_DIM:,}, got {_short(size)}"
    return ""


def _settings(value) -> str:
    if not isinstance(value, dict):
        return f"expected a mapping of training settings, got {_short(value)}"
    names = [f.name for f in dataclasses.fields(Settings)]
    unknown, missing = sorted(set(value) - set(names)), [k for k in names if k not in value]
    if unknown or missing:
        return f"unknown setting {unknown[0]!r}" if unknown else f"no {', '.join(missing)}"
    for key in names:
        problem = _setting(key, value[key])
        if problem:
            return problem
    return ""


def _setting(key: str, value) -> str:
    """The value's exact type (a batch of 2.0 or "2" is refused), then optim's ranges."""
    if value is None and getattr(Settings, key) is None:
        return ""
    want = TRAIN_KEYS[key]
    if not _has_type(value, want):
        return f"{key} must be {_TYPE_NAMES[want]}, got {_short(value)}"
    try:
        optim._check_value(key, value)           # the ranges --set and train: are held to
    except SpecError as exc:
        return exc.message.removeprefix("train: ")
    return ""


def _has_type(value, want: type) -> bool:
    if want is bool or isinstance(value, bool):
        return want is bool and isinstance(value, bool)
    return isinstance(value, (int, float)) if want is float else isinstance(value, want)


_TYPE_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _vocab(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        return f"expected the vocabulary as JSON text, got {_short(value)}"
    try:
        vocab = data.Vocab.from_json(value, "vocab")
    except DataError as exc:
        return exc.message
    if not all(isinstance(s, str) for s in vocab.symbols) or not isinstance(vocab.unknown, (str, type(None))):
        return "every symbol must be text"
    return ""


def _stats(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        return f"expected the feature statistics as JSON text, got {_short(value)}"
    try:
        stats = data.FeatureStats.from_json(value, "stats")
    except DataError as exc:
        return exc.message
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (*stats.mean, *stats.std))
    counts = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (stats.n_features, stats.rate))
    return "" if numbers and counts else "means and stds must be numbers, n_features and rate whole numbers"


def _dtype(value) -> str:
    return "" if value in DTYPES else f"expected one of {', '.join(DTYPES)}, got {_short(value)}"


def _backend(value) -> str:
    names = backends.names()              # the registry as it is now (a test may add a backend)
    return "" if value in names else f"expected one of {', '.join(names)}, got {_short(value)}"


LOADER = {"level": ("char", "word"), "features": tuple(FEATURES)}


def _loader(value) -> str:
    if not isinstance(value, dict):
        return f"expected a mapping, got {_short(value)}"
    for key, choice in value.items():
        if key not in LOADER:
            return f"unknown key {key!r}; a loader has {', '.join(LOADER)}"
        if choice not in LOADER[key]:
            return f"{key} must be one of {', '.join(LOADER[key])}, got {_short(choice)}"
    return ""


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


FIELDS = {"spec": _text, "data": _text, "dims": _dims, "settings": _settings, "vocab": _vocab, "stats": _stats,
          "backend": _backend, "dtype": _dtype, "loader": _loader}
