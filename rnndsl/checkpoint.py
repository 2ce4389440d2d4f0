"""Checkpoints: parameters, optimizer state and metadata in one `.npz`, without pickle.

    ir.Model                          --spec_hash-->  sha256 of what gives the parameters meaning
    params, opt_state, meta           --save------->  FILE.npz (written atomically)
    FILE.npz [, ir.Model]             --load------->  Checkpoint, or DataError saying what is wrong

Layout of the archive (np.savez, uncompressed, no object arrays):

    param/<name>   each parameter, in its own dtype
    opt/<key>      each optimizer / schedule state array (optim.training_state)
    meta           uint8 array: UTF-8 JSON {"format": "rnndsl-checkpoint", "version": 1, "meta": {...}}

`save` writes a hidden temporary file in the target's folder, fsyncs it, then `os.replace`s it
over the target, so the file at `path` is always a complete checkpoint: the previous one until
the new one is whole. A process killed mid-write leaves at most a `.<name>.*.tmp` file, which
`load` never reads. `load` uses `allow_pickle=False`: a file from someone else cannot run code.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ir
from .errors import DataError

FORMAT = "rnndsl-checkpoint"
VERSION = 1
_PARAM, _OPT, _META = "param/", "opt/", "meta"


# ---- the spec's identity -------------------------------------------------------------------------

def spec_text(model: ir.Model) -> str:
    """The parts of the IR that fix the parameters and their meaning: dims, inputs, params
    (name and shape), states, typed equations, loss, outputs. Not the name, file path, doc,
    comments, initialisers, train or generate settings."""
    lines = ir.pretty(model).split("\n")[1:]                  # line 0 names the model and its path
    return "\n".join(_drop_init(line) for line in lines) + "\n"


def _drop_init(line: str) -> str:
    return line.rsplit(" = ", 1)[0] if line.startswith("param ") else line


def spec_hash(model: ir.Model) -> str:
    """sha256 (hex) of `spec_text`: equal for specs that differ only in layout or comments."""
    return hashlib.sha256(spec_text(model).encode()).hexdigest()


def spec_meta(model: ir.Model) -> dict:
    """The metadata `load` compares against a model: put it in every checkpoint's `meta`."""
    return {"spec_hash": spec_hash(model), "spec_text": spec_text(model), "spec_name": model.name}


# ---- save --------------------------------------------------------------------------------------

def save(path, params: dict, opt_state: dict, meta: dict) -> Path:
    """Write a checkpoint atomically; `meta` must be JSON-serialisable and should include
    `spec_meta(model)`. Returns the path written."""
    path = Path(path)
    arrays = _arrays(params, opt_state, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


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


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def load(path, model: ir.Model | None = None) -> Checkpoint:
    """Read a checkpoint; with `model`, refuse one written for another spec. Raises DataError
    for a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}" + (" (it is a folder)" if path.is_dir() else ""),
                        "give the checkpoint file a training run wrote")
    entries = _read(path)
    ckpt = _unpack(path, entries)
    if model is not None:
        check_spec(ckpt, model)
    return ckpt


def _read(path: Path) -> dict:
    """Every array in the file, read eagerly, never unpickling anything."""
    with open(path, "rb") as f:
        magic = f.read(6)
        if magic and not magic.startswith((b"PK", b"\x93NUMPY")):
            raise _foreign(path, "it is not an .npz archive (and rnndsl never unpickles files)")
        f.seek(0)
        return _read_arrays(path, f)


def _read_arrays(path: Path, f) -> dict:
    try:
        data = np.load(f, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _foreign(path, "it holds a single array, not an archive")
        with data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():        # an object array inside the archive
            raise _foreign(path, "it contains pickled Python objects, which rnndsl never loads") from None
        raise _corrupt(path, exc) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _corrupt(path, exc) from None


def _unpack(path: Path, entries: dict) -> Checkpoint:
    """Split the archive's entries; DataError unless it is an rnndsl checkpoint we can read."""
    header = _header(path, entries.pop(_META, None))
    params = {k[len(_PARAM):]: v for k, v in entries.items() if k.startswith(_PARAM)}
    opt = {k[len(_OPT):]: v for k, v in entries.items() if k.startswith(_OPT)}
    if len(params) + len(opt) != len(entries):
        stray = sorted(k for k in entries if not k.startswith((_PARAM, _OPT)))
        raise _foreign(path, f"unexpected entries {', '.join(stray)}")
    return Checkpoint(str(path), params, opt, header["meta"])


def _header(path: Path, raw) -> dict:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise _foreign(path, "it has no rnndsl metadata")
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        raise _corrupt(path, "unreadable metadata") from None
    ours = isinstance(header, dict) and header.get("format") == FORMAT
    if not (ours and isinstance(header.get("meta"), dict)):
        raise _foreign(path, "its metadata is not an rnndsl checkpoint's")
    if header.get("version") != VERSION:
        raise DataError(f"{path}: checkpoint format version {header.get('version')!r}; this rnndsl reads "
                        f"version {VERSION}", "use the rnndsl version that wrote it")
    return header


def _corrupt(path: Path, why) -> DataError:
    return DataError(f"{path} is truncated or corrupt ({why})",
                     "checkpoints are written atomically, so it was damaged later; "
                     "restore a copy or train again")


def _foreign(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not an rnndsl checkpoint: {why}",
                     "give a checkpoint written by `rnndsl train`")


# ---- which spec --------------------------------------------------------------------------------

def check_spec(ckpt: Checkpoint, model: ir.Model) -> None:
    """DataError unless `ckpt` was written for `model`'s spec, naming what differs."""
    differences = param_differences(ckpt.params, model)
    if not differences and ckpt.spec_hash == spec_hash(model):
        return
    differences = differences or _text_differences(ckpt, model)
    name = ckpt.meta.get("spec_name")
    named = f" ({name}, not {model.name})" if name and name != model.name else ""
    listing = "".join(f"\n  {line}" for line in differences)
    raise DataError(f"checkpoint {ckpt.path} was written for another spec{named}:{listing}",
                    "resume with the spec the run was trained with, or start a new run with another --out")


def param_differences(params: dict, model: ir.Model) -> list:
    """One line per parameter that is missing from `params`, extra, or of another shape."""
    want = {p.name: p for p in model.params}
    out = [f"{name}: in the spec as {want[name].type}, missing from the checkpoint"
           for name in want if name not in params]
    out += [f"{name}: in the checkpoint {list(np.shape(params[name]))}, not in the spec"
            for name in params if name not in want]
    out += [f"{name}: {list(np.shape(params[name]))} in the checkpoint, {want[name].type} in the spec"
            for name in want if name in params and tuple(np.shape(params[name])) != want[name].type.dims]
    return out


def _text_differences(ckpt: Checkpoint, model: ir.Model, limit: int = 8) -> list:
    """The parameters match: show the IR lines that differ, when the checkpoint kept its text."""
    old = ckpt.meta.get("spec_text")
    if not isinstance(old, str):
        return ["the parameters match, but the equations or dims differ (the spec hash changed)"]
    diff = difflib.unified_diff(old.splitlines(), spec_text(model).splitlines(), lineterm="", n=0)
    lines = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    labelled = [("checkpoint: " if line[0] == "-" else "this spec:  ") + line[1:] for line in lines]
    return ["the parameters match, but these lines of the IR differ:"] + labelled[:limit]
