"""Files rnndsl reads and writes for the user: specs, data, `compile -o`.

Reading opens only regular files, with a size bound: a FIFO, a device such as /dev/zero, a
socket or a folder is refused before a byte is read (the open never blocks: O_NONBLOCK), and
a file larger than its limit is refused with its size. Writing (`write_file`) creates a new
file or replaces a regular, writable one atomically (a temporary file in the same folder, then
os.replace); it refuses a folder, a FIFO, a device node (even /dev/null, even as root), a
symbolic link and a read-only file. Each problem is raised as `fail(problem, hint)`, where
`problem` reads after the file's name ("is a folder, not a regular file"), so a spec's errors
carry its position and data errors name the file.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .limits import size

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind(mode: int) -> str:
    """'a folder', 'a named pipe (FIFO)', ... for a non-regular file's st_mode."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def status(path, fail) -> os.stat_result | None:
    """os.stat of `path` (through links), None when nothing is there; a name the system cannot
    look up (too long, a NUL byte) raised through `fail`."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        raise fail(f"cannot be looked at ({getattr(e, 'strerror', None) or e})", "") from None


def open_regular(path, limit: int, what: str, fail):
    """`path` opened for binary reading, if it is a regular file of at most `limit` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise fail("no such file", "") from None
    except (OSError, ValueError) as e:
        raise fail(f"cannot be opened ({getattr(e, 'strerror', None) or e})", "") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fail(f"is {kind(st.st_mode)}, not a regular file; rnndsl reads {what} only from regular files",
                       "give the path of a file")
        if st.st_size > limit:
            raise too_big(st.st_size, limit, what, fail)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit: int, what: str, fail) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked again while reading: a
    file in /proc says it is empty, a growing file outgrows its size)."""
    with open_regular(path, limit, what, fail) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise fail(f"cannot be read ({e.strerror})", "") from None
    if len(data) > limit:
        raise too_big(None, limit, what, fail)
    return data


def too_big(actual: int | None, limit: int, what: str, fail) -> Exception:
    have = f"is {size(actual)} ({actual:,} bytes)" if actual is not None else "is larger than that"
    return fail(f"{have}; the limit for {what} is {size(limit)}",
                "is this the right file? (docs/security.md lists the limits)")


# ---- writing ----------------------------------------------------------------------------------

def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()          # read once: setting it to read it is not thread-safe


def write_file(path, text: str, fail) -> None:
    """Write `text` to `path`, a new file or a regular writable one, atomically: a reader
    sees the old content or the new, never half; the old file keeps its mode."""
    target = Path(path)
    old = _writable(target, fail)
    if not target.parent.is_dir():
        raise fail(f"cannot be written: the folder {target.parent} does not exist", "create it first")
    mode = stat.S_IMODE(old.st_mode) if old else 0o666 & ~_UMASK
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise fail(f"cannot be written: no file can be made in {target.parent} ({e.strerror})", "") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        _writable(target, fail)                 # unchanged since the first look
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise fail(f"cannot be written ({e.strerror})", "") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writable(target: Path, fail) -> os.stat_result | None:
    """The stat of an existing regular writable `target`, None for a new path; else fail."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise fail(f"cannot be looked at ({getattr(e, 'strerror', None) or e})", "") from None
    if stat.S_ISLNK(st.st_mode):
        raise fail(f"is a symbolic link (to {os.readlink(target)}); rnndsl does not write "
                   "through links", "give the path of the file itself, or remove the link first")
    if not stat.S_ISREG(st.st_mode):
        raise fail(f"is {kind(st.st_mode)}, not a regular file; rnndsl writes only regular files",
                   "give a new file name, or the name of a file to replace")
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise fail("is read-only; rnndsl does not replace it",
                   "choose another name, or make it writable first (chmod u+w)")
    return st
