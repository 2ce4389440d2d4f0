"""Files in a run folder, touched one safe way only.

    path             --read_bytes / read_text-->  the contents (never through a link; only a regular
                                                   file; a size bound), or a DataError naming the file
    path, content    --write_atomically------->   the file replaced whole through a temporary file
                                                   named .rnndsl-NAME.PID.HEX.tmp
    path, text       --append_text------------>   a line added (never through a link)
    folder           --lock------------------->   an exclusive flock held for a `with` block
    folder           --remove_own_temps------->   the temporary files a killed rnndsl left behind
    any text         --safe_name-------------->   a file name over [A-Za-z0-9._-]

Every OSError becomes a DataError: an unwritable folder, a full disk or a link where a run file
belongs is a message for the user, not a traceback.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError
from .files import kind

LOCK = ".rnndsl.lock"
TEMP = re.compile(r"\.rnndsl-[A-Za-z0-9._-]+\.[0-9]+\.[0-9a-f]{8}\.tmp")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NO_LINKS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC     # NONBLOCK: opening a FIFO never waits


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
    return DataError(f"{path} is {kind(mode)}, not a regular file",
                     "rnndsl reads and writes only regular files in a run folder; move it away")


# ---- reading -------------------------------------------------------------------------------------

def open_regular(path, flags: int = os.O_RDONLY, doing: str = "read") -> int:
    """A descriptor for `path`, opened without following a link and only if it is a regular file."""
    try:
        fd = os.open(path, flags | _NO_LINKS, 0o666)
    except OSError as exc:
        raise failure(path, exc, doing) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise not_regular(path, mode)
    return fd


def read_bytes(path, limit: int) -> bytes:
    """The whole file, refusing one over `limit` bytes before reading it."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise DataError(f"{path} is {size:,} bytes; rnndsl writes this file with at most {limit:,}",
                            "is this the file rnndsl wrote? restore it or train again")
        try:
            return f.read(limit + 1)[:limit]
        except OSError as exc:
            raise failure(path, exc) from None


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
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND, "write")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise failure(path, exc, "write") from None


def write_atomically(path, content, durable: bool = False) -> Path:
    """Replace `path` whole: a reader sees the old or the new file, never half. `content` is
    text, bytes, or a function that writes into a binary file. With `durable` the data and the
    rename are fsynced. Refuses to replace a link, a FIFO, a device, a folder or a read-only file."""
    path = Path(path)
    check_replaceable(path)
    tmp = path.with_name(f".rnndsl-{safe_name(path.name)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_LINKS, 0o666)   # mode as open() gives
    except OSError as exc:
        raise failure(path, exc, "write") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, content)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise failure(path, exc, "write") from None
        raise
    if durable:
        _fsync_folder(path.parent)
    return path


def _write(f, content) -> None:
    if isinstance(content, str):
        f.write(content.encode("utf-8"))
    elif isinstance(content, (bytes, bytearray)):
        f.write(content)
    else:
        content(f)


def check_replaceable(path: Path) -> None:
    """DataError unless `path` is absent or a writable regular file (what rnndsl may replace)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise failure(path, exc, "write") from None
    if not stat.S_ISREG(mode):
        raise not_regular(path, mode)
    if not mode & 0o222:
        raise DataError(f"{path} is read-only; rnndsl does not replace it",
                        "make it writable if it may be replaced, or write elsewhere")


def _fsync_folder(folder: Path) -> None:
    """Make a rename itself durable (POSIX); a no-op where folders cannot be opened."""
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
