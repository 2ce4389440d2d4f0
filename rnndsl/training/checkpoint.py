"""Checkpoints: parameters, optimizer state and metadata in one `.npz`, without pickle.

    ir.Model                          --spec_hash-->  sha256 of what gives the parameters meaning
    spec.yaml text                    --source_meta-> the whole spec as trained, and its sha256
    params, opt_state, meta           --save------->  FILE.npz (written atomically)
    FILE.npz [, ir.Model, spec text]  --load------->  Checkpoint, or DataError saying what is wrong

Layout of the archive (np.savez, uncompressed, no object arrays):

    param/<name>   each parameter, in its own dtype: finite, real floating point
    opt/<key>      each optimizer / schedule state array (optim.training_state)
    meta           uint8 array: UTF-8 JSON {"format": "rnndsl-checkpoint", "version": 2, "meta": {...}}

`save` refuses parameters that are not finite, writes a temporary `.rnndsl-<name>.*.tmp` in
the target's folder, fsyncs it, then `os.replace`s it over the target (never through a link), so
the file at `path` is always a complete checkpoint. `load` reads the zip directory, then each
entry's header (shapes checked against the spec), and only then the data (rnndsl/core/safenpz.py):
nothing is unpickled, nothing unknown is read. Version 2 records the run's whole spec text, so
an edited spec.yaml is refused; version 1 did not, and is refused as written by an older rnndsl.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..frontend import ir, specid
from ..core import safenpz
from ..core.errors import DataError, Source
from .runfiles import failure, open_regular, write_atomically
from ..frontend.specid import param_differences, spec_hash, spec_meta, spec_text   # noqa: F401 (the API)

FORMAT = "rnndsl-checkpoint"
VERSION = 2
_PARAM, _OPT, _META = "param/", "opt/", "meta"
META_LIMIT = 32 << 20               # bytes of metadata: the spec's text (at most 1 MB) and a few numbers
MAX_COUNT = 1 << 62                 # steps, epochs and batches stay int64


# ---- save --------------------------------------------------------------------------------------

def save(path, params: dict, opt_state: dict, meta: dict) -> Path:
    """Write a checkpoint atomically; `meta` must be JSON-serialisable and should include
    `spec_meta(model)` (and for a run `source_meta(text)`). Returns the path written.
    DataError for parameters that are not finite real numbers, or a file that cannot be written."""
    path = Path(path)
    arrays = _arrays(params, opt_state, meta)
    bad = invalid_params(params)
    if bad:
        raise DataError(f"not saving {path}: " + "; ".join(bad),
                        "a checkpoint holds only finite parameters; the last one written is kept")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise failure(path.parent, exc, "create") from None
    return write_atomically(path, lambda f: np.savez(f, **arrays), durable=True)


def _arrays(params: dict, opt_state: dict, meta: dict) -> dict:
    """The archive's entries; ValueError for an object array (it would need pickle)."""
    out = {_PARAM + k: np.asarray(v) for k, v in params.items()}
    out.update({_OPT + k: np.asarray(v) for k, v in opt_state.items()})
    for key, a in out.items():
        if a.dtype.hasobject:
            raise ValueError(f"checkpoint entry {key} is an object array; store numbers only")
    text = json.dumps({"format": FORMAT, "version": VERSION, "meta": meta}, sort_keys=True)
    out[_META] = np.frombuffer(text.encode(), dtype=np.uint8)
    return out


def invalid_params(params: dict) -> list:
    """One line per parameter that is not an array of finite, real floating-point numbers."""
    out = []
    for name, value in params.items():
        a = np.asarray(value)
        if a.dtype.kind != "f":
            out.append(f"{name} holds {_describe(a.dtype)}, not real floating-point numbers")
            continue
        bad = a.size - int(np.count_nonzero(np.isfinite(a)))
        if bad:
            out.append(f"{name} holds {bad:,} non-finite value{'s' * (bad > 1)} "
                       f"({', '.join(sorted({str(v) for v in a[~np.isfinite(a)].flat[:1000]}))})")
    return out


def _describe(dtype: np.dtype) -> str:
    kinds = {"c": "complex numbers", "U": "text", "S": "bytes", "b": "booleans", "i": "integers", "u": "integers"}
    return f"{kinds.get(dtype.kind, 'values')} ({dtype})"


def source_meta(text: str) -> dict:
    """The metadata `load(..., source=)` compares a run's spec.yaml against: its whole text."""
    return {"spec_source": text, "spec_sha256": _sha256(text)}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ---- load --------------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    path: str
    params: dict
    opt_state: dict
    meta: dict = field(default_factory=dict)

    @property
    def spec_hash(self) -> str | None:
        return self.meta.get("spec_hash")


def load(path, model: ir.Model | None = None, source: Source | None = None) -> Checkpoint:
    """Read a checkpoint. With `model`, refuse one written for another spec (its parameters'
    shapes are compared before their data is read); with `source` (a run's spec.yaml), refuse
    one trained from other text. DataError for a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    _check_exists(path)
    try:
        with safenpz.Archive(os.fdopen(open_regular(path), "rb")) as archive:   # stored entries, no link
            return _load(path, archive, model, source)
    except safenpz.Refused as exc:
        raise _foreign(path, str(exc)) from None
    except safenpz.Corrupt as exc:
        raise _corrupt(path, exc) from None


def _load(path: Path, archive: safenpz.Archive, model, source) -> Checkpoint:
    meta = _read_meta(path, archive)
    entries = {name: archive.header(name) for name in archive.names if name != _META}   # headers only
    if model is not None:
        _check_shapes(path, meta, entries, model)
    if source is not None:
        check_source(path, meta, source)
    arrays = {name: archive.read(name) for name in entries}
    params = {k[len(_PARAM):]: v for k, v in arrays.items() if k.startswith(_PARAM)}
    opt = {k[len(_OPT):]: v for k, v in arrays.items() if k.startswith(_OPT)}
    _check_arrays(path, params, opt)
    ckpt = Checkpoint(str(path), params, opt, meta)
    if model is not None:
        check_spec(ckpt, model)
    return ckpt


def _check_exists(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise failure(path, exc) from None
    if mode is None or stat.S_ISDIR(mode):
        raise DataError(f"no checkpoint at {path}" + (" (it is a folder)" if mode else ""),
                        "give the checkpoint file a training run wrote")


def _read_meta(path: Path, archive: safenpz.Archive) -> dict:
    """The metadata, after the directory shows nothing but rnndsl's entries (none of them read)."""
    names = archive.names
    if _META not in names:
        raise _foreign(path, "it has no rnndsl metadata")
    stray = sorted(n for n in names if n != _META and not n.startswith((_PARAM, _OPT)))
    if stray:
        raise _foreign(path, f"unexpected entries {', '.join(stray[:5])}"
                             + (f" and {len(stray) - 5} more" if len(stray) > 5 else ""))
    header = _header(path, archive.read(_META, META_LIMIT))
    _check_meta(path, header["meta"])
    return header["meta"]


def _header(path: Path, raw: np.ndarray) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _foreign(path, "it has no rnndsl metadata")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _corrupt(path, "unreadable metadata") from None
    ours = isinstance(header, dict) and header.get("format") == FORMAT
    if not (ours and isinstance(header.get("meta"), dict)):
        raise _foreign(path, "its metadata is not an rnndsl checkpoint's")
    if header.get("version") == 1:
        raise DataError(f"{path} was written by an older rnndsl (checkpoint format 1), which did not "
                        "record the spec's text", "train the run again with this rnndsl")
    if header.get("version") != VERSION:
        raise DataError(f"{path}: checkpoint format version {header.get('version')!r:.40}; this rnndsl "
                        f"reads version {VERSION}", "use the rnndsl version that wrote it")
    return header


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


def _number_or_none(v) -> bool:
    return v is None or isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(v) -> bool:
    return isinstance(v, str)


META_TYPES = {"step": (_count, "a whole number, 0 or more"), "epoch": (_count, "a whole number, 0 or more"),
              "batch": (_count, "a whole number, 0 or more"), "best": (_number_or_none, "a number or null"),
              "settings": (lambda v: isinstance(v, dict), "a mapping of training settings"),
              **{k: (_text, "text") for k in ("spec_hash", "spec_text", "spec_name", "spec_source", "spec_sha256")}}


def _check_meta(path: Path, meta: dict) -> None:
    """DataError naming the first metadata value of the wrong type (what rnndsl reads of it)."""
    for key, (ok, what) in META_TYPES.items():
        if key in meta and not ok(meta[key]):
            raise DataError(f"{path}: checkpoint metadata {key} must be {what}, got {meta[key]!r:.60}",
                            "rnndsl wrote it otherwise: the file was changed; restore it or train again")


def require(ckpt: Checkpoint, keys: tuple) -> None:
    """DataError unless the metadata has every key in `keys` (what a training run records)."""
    missing = [k for k in keys if k not in ckpt.meta]
    if missing:
        raise DataError(f"{ckpt.path}: checkpoint metadata lacks {', '.join(missing)}",
                        "give a checkpoint written by `rnndsl train`")


def _check_arrays(path: Path, params: dict, opt: dict) -> None:
    bad = invalid_params(params)
    if bad:
        raise DataError(f"{path} holds parameters rnndsl never saves: " + "; ".join(bad),
                        "checkpoints are checked before writing, so the file was changed; restore it or train again")
    for key, a in opt.items():
        if a.dtype.kind not in "biuf":
            raise _foreign(path, f"its optimizer state {key} holds {_describe(a.dtype)}")


def _corrupt(path: Path, why) -> DataError:
    return DataError(f"{path} is truncated or corrupt ({why})",
                     "checkpoints are written atomically, so it was damaged later; "
                     "restore a copy or train again")


def _foreign(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not an rnndsl checkpoint: {why}",
                     "give a checkpoint written by `rnndsl train`")


# ---- which spec --------------------------------------------------------------------------------

def _check_shapes(path: Path, meta: dict, entries: dict, model: ir.Model) -> None:
    """Before any data is read: the parameters' declared shapes against the spec's, and each
    optimizer slot (opt/<slot>/<param>) against its parameter's."""
    shapes = {k[len(_PARAM):]: e.shape for k, e in entries.items() if k.startswith(_PARAM)}
    differences = param_differences(shapes, model)
    if differences:
        raise specid.other_spec(str(path), meta.get("spec_name"), model, differences)
    for key, e in entries.items():
        slot, _, name = key[len(_OPT):].partition("/")
        if key.startswith(_OPT) and slot not in ("schedule", "carry") and name in shapes and e.shape != shapes[name]:
            raise _corrupt(path, f"optimizer state {key} has shape {list(e.shape)}, "
                                 f"its parameter {list(shapes[name])}")


def check_spec(ckpt: Checkpoint, model: ir.Model) -> None:
    """DataError unless `ckpt` was written for `model`'s spec, naming what differs."""
    shapes = {name: np.shape(a) for name, a in ckpt.params.items()}
    differences = param_differences(shapes, model)
    if not differences and ckpt.spec_hash == spec_hash(model):
        return
    differences = differences or specid.ir_differences(ckpt.meta.get("spec_text"), model)
    raise specid.other_spec(ckpt.path, ckpt.meta.get("spec_name"), model, differences)


def check_source(path, meta: dict, source: Source) -> None:
    """DataError unless `source` (a run's spec.yaml) is, byte for byte, the text the checkpoint
    at `path` was trained from; the message names the top-level keys that changed."""
    old = meta.get("spec_source")
    if not isinstance(old, str) or meta.get("spec_sha256") != _sha256(old):
        raise DataError(f"{path} does not record the spec it was trained with (it was written by an "
                        "older rnndsl, or changed)", "train the run again with this rnndsl")
    if _sha256(source.text) != meta["spec_sha256"]:
        raise specid.edited(source.path, str(path), old, source.text)
