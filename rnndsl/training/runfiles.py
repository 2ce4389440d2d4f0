"""Files in a run folder: files.py's mechanics under a run folder's policy. No file is opened
through a link (O_NOFOLLOW), temporary files are named so that rnndsl finds its own, the folder
is locked while a run trains, and every problem is a DataError naming the file.

    path             --read_bytes / read_text-->  the contents (never through a link; only a regular
                                                   file; a size bound), or a DataError naming the file
    path, content    --write_atomically------->   the file replaced whole through a temporary file
                                                   named .rnndsl-NAME.PID.HEX.tmp
    path, text       --append_text------------>   a line added (never through a link)
    folder           --lock------------------->   an exclusive flock held for a `with` block
    folder           --remove_own_temps------->   the temporary files a killed rnndsl left behind
    any text         --safe_name-------------->   a file name over [A-Za-z0-9._-]

An unwritable folder, a full disk or a link where a run file belongs is a message for the user,
not a traceback.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path

from ..core import files
from ..core.errors import DataError

LOCK = ".rnndsl.lock"
TEMP = re.compile(r"\.rnndsl-[A-Za-z0-9._-]+\.[0-9]+\.[0-9a-f]{8}\.tmp")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """`text` as a file name: runs of other characters become `_`, no leading dot or dash
    (hidden files, options), at most `limit` characters, never empty."""
    return _SAFE.sub("_", str(text)).lstrip(".-")[:limit] or "run"


# ---- errors --------------------------------------------------------------------------------------

def failure(path, exc: OSError, doing: str = "read") -> DataError:
    """The DataError for an OSError met while `doing` something to `path`."""
    if exc.errno == errno.ELOOP:
        return DataError(f"{path} is a symbolic link; rnndsl does not follow links to files in a run folder",
                         "put the file itself there, or use another folder")
    if exc.errno == errno.EISDIR:
        return DataError(f"{path} is a folder, not a file", "move it away, or use another folder")
    if exc.errno == errno.ENOENT:
        return DataError(f"cannot {doing} {path}: no such file or folder")
    hint = {errno.ENOSPC: "free some disk space, then --resume the run",
            errno.EDQUOT: "free some disk space, then --resume the run"}.get(
        exc.errno, "check the folder's permissions, or use another folder (--out)")
    return DataError(f"cannot {doing} {path} ({exc.strerror or exc})", hint)


def not_regular(path, mode: int) -> DataError:
    if stat.S_ISLNK(mode):
        return failure(path, OSError(errno.ELOOP, "link"))
    return DataError(f"{path} is {files.kind(mode)}, not a regular file",
                     "rnndsl reads and writes only regular files in a run folder; move it away")


def _refused(path, exc: files.Refused) -> DataError:
    if isinstance(exc, files.NotRegular):
        return not_regular(path, exc.mode)
    if isinstance(exc, files.TooBig):
        have = f"{exc.size:,} bytes" if exc.size is not None else f"over {exc.limit:,} bytes"
        return DataError(f"{path} is {have}; rnndsl writes this file with at most {exc.limit:,}",
                         "is this the file rnndsl wrote? restore it or train again")
    return DataError(f"{path} is read-only; rnndsl does not replace it",
                     "make it writable if it may be replaced, or write elsewhere")


@contextmanager
def _worded(path, doing: str = "read"):
    """files.py's problems with `path`, raised as DataErrors."""
    try:
        yield
    except files.Refused as exc:
        raise _refused(path, exc) from None
    except OSError as exc:
        raise failure(path, exc, doing) from None


# ---- reading -------------------------------------------------------------------------------------

def open_regular(path, flags: int = os.O_RDONLY, doing: str = "read") -> int:
    """A descriptor for `path`, opened without following a link and only if it is a regular file."""
    with _worded(path, doing):
        return files.open_fd(path, flags, follow_links=False)


def read_bytes(path, limit: int) -> bytes:
    """The whole file, refusing one over `limit` bytes before reading it (and while reading)."""
    with _worded(path), os.fdopen(files.open_fd(path, follow_links=False, limit=limit), "rb") as f:
        return files.read_bounded(f, limit)


def read_text(path, limit: int) -> str:
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start})",
                        "rnndsl writes it as UTF-8; restore it or train again") from None


# ---- writing -------------------------------------------------------------------------------------

def append_text(path, text: str) -> None:
    """Add `text` at the end of an existing regular file (never through a link)."""
    with _worded(path, "write"), os.fdopen(open_regular(path, os.O_WRONLY | os.O_APPEND, "write"),
                                           "w", encoding="utf-8") as f:
        f.write(text)


def write_atomically(path, content, durable: bool = False) -> Path:
    """Replace `path` whole (files.replace_atomically) through a temporary file named
    .rnndsl-NAME.PID.HEX.tmp. Refuses to replace a link, a FIFO, a device, a folder or a
    read-only file."""
    path = Path(path)
    with _worded(path, "write"):
        files.replace_atomically(path, content, f".rnndsl-{safe_name(path.name)}", durable)
    return path


def check_replaceable(path: Path) -> None:
    """DataError unless `path` is absent or a writable regular file (what rnndsl may replace)."""
    with _worded(path, "write"):
        files.check_replaceable(path)


def remove_regular(path) -> None:
    """Delete `path` if it is a regular file (a link or anything else is left alone)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise failure(path, exc, "delete") from None


def remove_own_temps(folder) -> list:
    """Delete the temporary files `write_atomically` names (.rnndsl-NAME.PID.HEX.tmp): regular
    files of this user, left by a killed rnndsl. Call it holding the folder's lock, so that no
    rnndsl is writing them. Returns the names deleted."""
    gone = []
    for entry in _entries(folder):
        if TEMP.fullmatch(entry.name) and entry.is_file(follow_symlinks=False) \
                and entry.stat(follow_symlinks=False).st_uid == os.getuid():
            remove_regular(entry.path)
            gone.append(entry.name)
    return gone


def _entries(folder) -> list:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as exc:
        raise failure(folder, exc) from None


# ---- the lock ------------------------------------------------------------------------------------

@contextmanager
def lock(folder):
    """Hold an exclusive lock on `folder` (flock on FOLDER/.rnndsl.lock, which records the pid)
    for the `with` block; DataError naming the holder if another process has it."""
    path = Path(folder) / LOCK
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, "lock")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{folder} is in use by another rnndsl process{_holder(fd)}",
                            "wait for it to finish, or train into another folder (--out)") from None
        except OSError as exc:
            raise failure(path, exc, "lock") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f" (pid {text})" if text.isdigit() else ""
