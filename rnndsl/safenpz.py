"""Reading an `.npz` archive without trusting it: the zip directory first, then each entry's
`.npy` header, and only then its data; nothing is ever unpickled.

    path          --Archive------>  the entry names, from the zip directory alone
    Archive, name --header------->  Entry(shape, dtype): the .npy header read, the data not
    Archive, name --read--------->  the array, its declared size checked against the entry first

Entries must be stored (np.savez writes them so): then no entry can hold more data than the
file itself, and a compressed 3 GiB stray or a directory claiming 8 TiB is refused before a
byte of it is inflated or allocated. Problems are raised as `Refused` (not an archive this
reader takes) or `Corrupt` (damaged); the caller words them for its own files.
"""
from __future__ import annotations

import math
import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from .runfiles import open_regular

_KINDS = "biufcSU"          # numbers, booleans and text; never objects, records or dates
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error,
               NotImplementedError, RuntimeError, KeyError, IndexError, OverflowError)


class Refused(Exception):
    """Not an archive of arrays this reader takes (the message says why)."""


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
    """An open .npz file (a regular file, never through a link); use it in a `with` block."""

    def __init__(self, path):
        self.path = path
        self._file = os.fdopen(open_regular(path), "rb")
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            _check_magic(self._file)
            self._zip = zipfile.ZipFile(self._file)
            self._infos = _directory(self._zip)
        except _ZIP_ERRORS as exc:
            self._file.close()
            raise Corrupt(str(exc) or type(exc).__name__) from None
        except BaseException:
            self._file.close()
            raise

    @property
    def names(self) -> list:
        """Entry names as np.savez keys (without `.npy`), from the directory only."""
        return list(self._infos)

    def header(self, name: str) -> Entry:
        with self._open(name) as f:
            return _npy_header(f, self._infos[name], name)

    def read(self, name: str, limit: int | None = None) -> np.ndarray:
        """The entry's array; `limit` bounds its size in bytes (checked before reading)."""
        with self._open(name, limit) as f:
            entry = _npy_header(f, self._infos[name], name)
            return _npy_data(f, entry, name)

    def _open(self, name: str, limit: int | None = None):
        info = self._infos[name]
        if info.flag_bits & 0x1:
            raise Refused(f"its entry {name} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise Refused(f"its entry {name} is compressed (np.savez stores entries uncompressed)")
        if info.header_offset + max(info.file_size, info.compress_size) > self.size:
            raise Corrupt(f"entry {name} declares {info.file_size:,} bytes; the file has {self.size:,}")
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
        raise Refused("it holds a single array, not an archive")
    if not magic.startswith(b"PK"):
        raise Refused("it is not an .npz archive (and rnndsl never unpickles files)")


def _directory(zf: zipfile.ZipFile) -> dict:
    """name -> ZipInfo; the names np.savez gives are `key.npy`."""
    infos = {}
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in infos:
            raise Corrupt(f"the entry {name} appears twice")
        infos[name] = info
    return infos


def _npy_header(f, info: zipfile.ZipInfo, name: str) -> Entry:
    """The .npy header of an entry; Refused for objects (pickle) and other unreadable types,
    Corrupt when the data it declares is not exactly what the entry holds."""
    try:
        version = np.lib.format.read_magic(f)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise Corrupt(f"entry {name} has .npy format {version}, not 1.0 or 2.0")
        shape, fortran, dtype = readers[version](f)
    except (ValueError, TypeError, SyntaxError, OverflowError) as exc:
        raise Corrupt(f"entry {name} has no valid .npy header ({exc})") from None
    if dtype.hasobject:
        raise Refused("it contains pickled Python objects, which rnndsl never loads")
    if dtype.kind not in _KINDS or dtype.fields or dtype.subdtype:
        raise Refused(f"its entry {name} holds {dtype}, not numbers")
    entry = Entry(tuple(shape), dtype, bool(fortran), f.tell())
    if any(d < 0 for d in entry.shape) or entry.offset + entry.nbytes != info.file_size:
        raise Corrupt(f"entry {name} declares {entry.shape} of {dtype} ({entry.nbytes:,} bytes) but "
                      f"holds {info.file_size - entry.offset:,} bytes")
    return entry


def _npy_data(f, entry: Entry, name: str) -> np.ndarray:
    """Read exactly the declared bytes into a new array (its size is bounded by the file's)."""
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
