"""Reading an `.npz` archive without trusting it: the zip directory first, then each entry's
`.npy` header, and only then its data; nothing is ever unpickled.

    open binary file  --Archive------>  the entry names, from the zip directory alone
    Archive, name     --header------->  Entry(shape, dtype): the .npy header read, the data not
    Archive, name     --read--------->  the array, its declared size checked against the entry first
    open file, path   --load_arrays-->  name -> array of a data .npz (--data), or a DataError

The caller opens the file with its own policy and says whether entries may be compressed. A
checkpoint (checkpoint.py) is opened never through a link and its entries must be stored (np.savez
writes them so): no entry can then hold more data than the file itself, so a compressed 3 GiB
stray or a directory claiming 8 TiB is refused before a byte of it is inflated or allocated. A
data .npz may be compressed (np.savez_compressed), so `load_arrays` bounds its arrays' total size
from their headers (limits.py, and the machine's memory) before reading any. Problems are raised
as `Refused` (not an archive this reader takes) or `Corrupt` (damaged); each caller words them.
"""
from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from . import limits
from .errors import DataError

NPZ_HINT = "write one with np.savez(path, name=array, ...)"
_KINDS = "biufcSU"          # numbers, booleans and text; never objects, records or dates
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, OSError, EOFError,
               struct.error, NotImplementedError, RuntimeError, KeyError, IndexError, OverflowError)
_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError)  # NumPy parses text
_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class Refused(Exception):
    """Not an archive of arrays this reader takes: the message says why, `hint` what to do."""

    def __init__(self, message: str, hint: str = NPZ_HINT):
        super().__init__(message)
        self.hint = hint


class NotAnArchive(Refused):
    """No zip archive at all: one .npy array (`single`), a pickle, text, ..."""

    def __init__(self, message: str, single: bool):
        super().__init__(message)
        self.single = single


class Corrupt(Exception):
    """An archive that is truncated or damaged (the message says where)."""


@dataclass(frozen=True)
class Entry:
    shape: tuple
    dtype: np.dtype
    fortran: bool
    offset: int                 # bytes of .npy header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class Archive:
    """An .npz archive in `file` (an open binary file, closed with the archive); its entries
    may be compressed only if `compressed`. Use it in a `with` block."""

    def __init__(self, file, compressed: bool = False):
        self._file, self.compressed = file, compressed
        try:
            self.size = os.fstat(file.fileno()).st_size
            _check_magic(file)
            self._zip = zipfile.ZipFile(file)
            self._infos = _directory(self._zip)
        except _ZIP_ERRORS as exc:
            file.close()
            raise Corrupt(str(exc) or type(exc).__name__) from None
        except BaseException:
            file.close()
            raise

    @property
    def names(self) -> list:
        """Entry names as np.savez keys (without `.npy`), from the directory only."""
        return list(self._infos)

    def header(self, name: str) -> Entry:
        with self._open(name) as f:
            return _npy_header(f, name)

    def read(self, name: str, limit: int | None = None) -> np.ndarray:
        """The entry's array; `limit` bounds its size in bytes (checked before reading)."""
        with self._open(name, limit) as f:
            entry = _npy_header(f, name)
            _check_holds(entry, self._infos[name].file_size, name)
            return _npy_data(f, entry, name)

    def _open(self, name: str, limit: int | None = None):
        info = self._infos[name]
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.flag_bits & 0x1:
            raise Refused(f"its entry {name} is encrypted")
        if not (stored or self.compressed):
            raise Refused(f"its entry {name} is compressed (np.savez stores entries uncompressed)")
        claimed = max(info.file_size, info.compress_size) if stored else info.compress_size
        if info.header_offset + claimed > self.size:
            raise Corrupt(f"entry {name} declares {claimed:,} bytes; the file has {self.size:,}")
        if limit is not None and info.file_size > limit:
            raise Refused(f"its entry {name} is {info.file_size:,} bytes; at most {limit:,} are expected")
        try:
            return _Guarded(self._zip.open(info))
        except _ZIP_ERRORS as exc:
            raise Corrupt(f"entry {name}: {exc}") from None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()
        self._file.close()


class _Guarded:
    """A zip entry stream whose read errors (a CRC mismatch, a short file) become Corrupt."""

    def __init__(self, f):
        self.f = f

    def read(self, n: int = -1) -> bytes:
        try:
            return self.f.read(n)
        except _ZIP_ERRORS as exc:
            raise Corrupt(str(exc) or type(exc).__name__) from None

    def tell(self) -> int:
        return self.f.tell()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def _check_magic(f) -> None:
    magic = f.read(6)
    f.seek(0)
    if not magic:
        raise Corrupt("the file is empty")
    if magic.startswith(b"\x93NUMPY"):
        raise NotAnArchive("it holds a single array, not an archive", single=True)
    if not magic.startswith(b"PK"):
        raise NotAnArchive("it is not an .npz archive (and rnndsl never unpickles files)", single=False)


def _directory(zf: zipfile.ZipFile) -> dict:
    """name -> ZipInfo; the names np.savez gives are `key.npy`."""
    infos = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise Refused(f"it holds {info.filename!r}, which is not a .npy array")
        name = info.filename[:-4]
        if name in infos:
            raise Corrupt(f"the entry {name} appears twice")
        infos[name] = info
    return infos


def _npy_header(f, name: str) -> Entry:
    """The .npy header of an entry; Refused for objects (pickle) and other unreadable types."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in _HEADERS:
            raise Corrupt(f"entry {name} has .npy format {version}, not 1.0 or 2.0")
        shape, fortran, dtype = _HEADERS[version](f)
    except _HEADER_ERRORS as exc:
        raise Corrupt(f"entry {name} has no valid .npy header ({exc})") from None
    if dtype.hasobject:
        raise Refused(f"array {name!r} holds Python objects (dtype=object); its data contains pickled "
                      "Python objects, which rnndsl never loads",
                      f"save it with a plain dtype: np.savez(path, {name}=np.asarray(x, dtype=np.float32))")
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"entry {name} holds {dtype}; rnndsl reads numbers, booleans and text",
                      "save it as integers or floats")
    if any(d < 0 for d in shape):
        raise Corrupt(f"entry {name} has no valid .npy header (shape {tuple(shape)})")
    return Entry(tuple(shape), dtype, bool(fortran), f.tell())


def _check_holds(entry: Entry, file_size: int, name: str) -> None:
    """Corrupt unless the data the header declares is exactly what the entry holds."""
    if entry.offset + entry.nbytes != file_size:
        raise Corrupt(f"entry {name} declares {entry.shape} of {entry.dtype} ({entry.nbytes:,} bytes) but "
                      f"holds {file_size - entry.offset:,} bytes")


def _npy_data(f, entry: Entry, name: str) -> np.ndarray:
    """Read exactly the declared bytes into a new array (its size is bounded by the caller)."""
    out = np.empty(entry.shape[::-1] if entry.fortran else entry.shape, entry.dtype)
    flat = out.reshape(-1).view(np.uint8) if entry.nbytes else None
    done = 0
    while done < entry.nbytes:
        chunk = f.read(min(entry.nbytes - done, 1 << 24))
        if not chunk:
            raise Corrupt(f"entry {name} ends early")
        flat[done:done + len(chunk)] = np.frombuffer(chunk, np.uint8)
        done += len(chunk)
    if f.read(1):                   # reaching the end also checks the entry's CRC
        raise Corrupt(f"entry {name} holds more than it declares")
    array = out.T if entry.fortran else out
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


# ---- a data .npz (--data, `sample --from`) ----------------------------------------------------

def load_arrays(file, path) -> dict:
    """name -> array of every array in the data .npz open in `file` (closed here); entries may
    be compressed. DataError naming `path`."""
    try:
        with Archive(file, compressed=True) as archive:
            entries = {name: archive.header(name) for name in _data_names(archive, path)}
            _check_size(entries, path)
            return {name: archive.read(name) for name in entries}
    except (Refused, Corrupt) as exc:
        raise _data_error(exc, path) from None


def _data_names(archive: Archive, path) -> list:
    names = archive.names
    if len(names) > limits.MAX_NPZ_ARRAYS:
        raise DataError(f"{path}: holds more than {limits.MAX_NPZ_ARRAYS:,} arrays")
    if not names:
        raise DataError(f"{path}: the archive holds no arrays")
    return names


def _check_size(entries: dict, path) -> None:
    """Refuse arrays too large for the limit or the machine, from their headers alone."""
    sizes = {name: math.prod(e.shape) * max(1, e.dtype.itemsize) for name, e in entries.items()}
    total = sum(sizes.values())
    largest = max(sizes, key=sizes.get)
    hint = f"the largest is {largest!r}, {entries[largest].dtype} {entries[largest].shape}"
    if total > limits.MAX_NPZ_ARRAY_BYTES:
        raise DataError(f"{path}: its arrays take {limits.size(total)} once read; the limit is "
                        f"{limits.size(limits.MAX_NPZ_ARRAY_BYTES)}", hint)
    limits.check_memory(total, f"reading the arrays of {path}", hint)


def _data_error(exc: Exception, path) -> DataError:
    """How the reader's problems read for a data file the user wrote."""
    if isinstance(exc, NotAnArchive):
        what = "holds one .npy array, not an .npz archive of named arrays" if exc.single else \
            "not a NumPy .npz archive (not a zip file)"
        return DataError(f"{path}: {what}", NPZ_HINT)
    if isinstance(exc, Corrupt):
        return DataError(f"{path}: not a NumPy .npz archive, or a damaged one ({exc})", NPZ_HINT)
    return DataError(f"{path}: {exc}", exc.hint)
