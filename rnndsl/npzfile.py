"""A data `.npz` (`--data`, `sample --from`) read header first: the zip directory, then each
array's `.npy` header (shape, dtype), and only then the data. An archive whose arrays would
take more than MAX_NPZ_ARRAY_BYTES, or more memory than the machine has, is refused before a
byte is inflated or allocated (a compressed archive can inflate a thousandfold, and a header
can claim any shape). Nothing is unpickled. Entries may be compressed (np.savez_compressed).
"""
from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from . import files, limits
from .errors import DataError

NPZ_HINT = "write one with np.savez(path, name=array, ...)"
KINDS = "biufcSU"           # booleans, numbers and text; never objects, records or dates
_BROKEN = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, OSError, EOFError,
           struct.error, NotImplementedError, RuntimeError, KeyError, OverflowError)


def load(path) -> dict:
    """name -> array of every array in the archive at `path`; DataError naming the file."""
    fail = lambda problem, hint: DataError(f"{path}: {problem}", hint or "check the path given with --data")
    with files.open_regular(path, limits.MAX_NPZ_BYTES, "an .npz archive", fail) as f:
        _check_magic(f, path)
        try:
            with zipfile.ZipFile(f) as zf:
                infos = _directory(zf, path)
                headers = {name: _header(zf, info, path, name) for name, info in infos.items()}
                _check_size(headers, path)
                return {name: _read(zf, info, path, name) for name, info in infos.items()}
        except _BROKEN as e:
            raise DataError(f"{path}: not a NumPy .npz archive, or a damaged one ({e})", NPZ_HINT) from None


def _check_magic(f, path) -> None:
    magic = f.read(6)
    f.seek(0)
    if not magic:
        raise DataError(f"{path}: the file is empty")
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: holds one .npy array, not an .npz archive of named arrays", NPZ_HINT)


def _directory(zf: zipfile.ZipFile, path) -> dict:
    """array name -> ZipInfo, from the zip directory alone."""
    infos = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise DataError(f"{path}: holds {info.filename!r}, which is not a .npy array", NPZ_HINT)
        name = info.filename[:-4]
        if name in infos:
            raise DataError(f"{path}: holds the array {name!r} twice")
        infos[name] = info
        if len(infos) > limits.MAX_NPZ_ARRAYS:
            raise DataError(f"{path}: holds more than {limits.MAX_NPZ_ARRAYS:,} arrays")
    if not infos:
        raise DataError(f"{path}: the archive holds no arrays")
    return infos


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path, name: str) -> tuple:
    """(shape, dtype) from an entry's .npy header, the data unread; its dtype checked."""
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with zf.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version not in read:
            raise DataError(f"{path}: array {name!r} is in .npy format {version}, which rnndsl does not read",
                            NPZ_HINT)
        try:
            shape, _, dtype = read[version](m)
        except (ValueError, TypeError, SyntaxError, tokenize.TokenError) as e:     # NumPy parses the header text
            raise DataError(f"{path}: array {name!r} has a damaged .npy header ({e})", NPZ_HINT) from None
    if dtype.hasobject:
        raise DataError(f"{path}: array {name!r} holds Python objects (dtype=object), which only "
                        "pickle could load; rnndsl reads plain numeric and string arrays",
                        f"save it with a plain dtype: np.savez(path, {name}=np.asarray(x, dtype=np.float32))")
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{path}: array {name!r} has dtype {dtype}; rnndsl reads numbers, booleans and text",
                        "save it as integers or floats")
    return shape, dtype


def _check_size(headers: dict, path) -> None:
    """Refuse arrays too large for the limit or the machine, from their headers alone."""
    sizes = {name: math.prod(shape) * max(1, dtype.itemsize) for name, (shape, dtype) in headers.items()}
    total = sum(sizes.values())
    largest = max(sizes, key=sizes.get)
    shape, dtype = headers[largest]
    hint = f"the largest is {largest!r}, {dtype} {shape}"
    if total > limits.MAX_NPZ_ARRAY_BYTES:
        raise DataError(f"{path}: its arrays take {limits.size(total)} once read; the limit is "
                        f"{limits.size(limits.MAX_NPZ_ARRAY_BYTES)}", hint)
    limits.check_memory(total, f"reading the arrays of {path}", hint)


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path, name: str) -> np.ndarray:
    with zf.open(info) as m:
        return np.lib.format.read_array(m, allow_pickle=False)
