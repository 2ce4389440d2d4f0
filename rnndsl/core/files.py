"""The one way rnndsl opens, reads and replaces a file, and the wording of problems with the
user's own files (specs, --data, `compile -o`); runfiles.py words them for a run folder.

    path [, flags, follow_links, limit]  --open_fd------------>  a descriptor of a regular file
    open file, limit                     --read_bounded------->  its bytes, at most `limit`
    path                                 --check_replaceable-->  its lstat if rnndsl may replace it
    path, content, temp stem [, durable] --replace_atomically->  the file replaced whole, mode kept
    path, limit, what, fail              --open_regular / read_regular-->  a file / its bytes
    path, text, fail                     --write_file--------->  `compile -o`'s output written

Only regular files are opened, never blocking (a FIFO or /dev/zero is refused before a byte is
read), through a link only when asked; sizes are bounded while reading too (/proc files say they
are empty). These raise OSError or `Refused`. The user-facing functions follow links and raise
`fail(problem, hint)`, `problem` reading after the file's name ("is a folder, not a regular
file"), so a spec's errors carry its position and data errors name the file.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .limits import size

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))
_NEVER_WAIT = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC     # opening a FIFO never waits


def kind(mode: int) -> str:
    """'a folder', 'a named pipe (FIFO)', ... for a non-regular file's st_mode."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class Refused(Exception):
    """A file rnndsl does not read or replace; the subclass says why."""


class NotRegular(Refused):
    """Not a regular file (a link, when links are not followed): `mode` says what it is."""

    def __init__(self, mode: int):
        super().__init__(kind(mode))
        self.mode = mode


class TooBig(Refused):
    """Over `limit` bytes: `size` of them, or None when found while reading."""

    def __init__(self, size: int | None, limit: int):
        super().__init__(f"{size} > {limit}")
        self.size, self.limit = size, limit


class ReadOnly(Refused):
    """A regular file its user may not write."""


class NoTemp(OSError):
    """No temporary file could be made beside the file to replace."""


# ---- the mechanics ------------------------------------------------------------------------------

def open_fd(path, flags: int = os.O_RDONLY, follow_links: bool = True, limit: int | None = None) -> int:
    """A descriptor for `path` if it is a regular file (of at most `limit` bytes); unless
    `follow_links`, a link is refused by the open itself (ELOOP). Raises OSError, ValueError
    (a NUL in the name), NotRegular or TooBig."""
    fd = os.open(path, flags | _NEVER_WAIT | (0 if follow_links else os.O_NOFOLLOW), 0o666)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(st.st_mode)
        if limit is not None and st.st_size > limit:
            raise TooBig(st.st_size, limit)
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_bounded(f, limit: int) -> bytes:
    """All of `f`, TooBig past `limit` bytes (a growing file outgrows its size)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise TooBig(None, limit)
    return data


def check_replaceable(path) -> os.stat_result | None:
    """The lstat of `path` if rnndsl may replace it (a regular file its user may write), None
    when nothing is there. Raises OSError, ValueError, NotRegular (a link too) or ReadOnly."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(st.st_mode)
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise ReadOnly(str(path))
    return st


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()          # read once: setting it to read it is not thread-safe


def replace_atomically(path, content, stem: str, durable: bool = False) -> None:
    """Replace `path` whole through a temporary file STEM.PID.HEX.tmp beside it: a reader sees
    the old file or the new, never half, and the old file's mode is kept. `content` is text
    (UTF-8), bytes, or a function that writes into a binary file; with `durable` the data and
    the rename are fsynced. Raises what check_replaceable raises (it looks again just before
    the rename), NoTemp, or OSError; the temporary file never outlives a failure."""
    path = Path(path)
    old = check_replaceable(path)
    mode = stat.S_IMODE(old.st_mode) if old else 0o666 & ~_UMASK
    tmp = path.with_name(f"{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise NoTemp(e.errno, e.strerror, str(path.parent)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, content)
            os.fchmod(f.fileno(), mode)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        check_replaceable(path)                 # unchanged since the first look
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def _write(f, content) -> None:
    if isinstance(content, str):
        f.write(content.encode("utf-8"))
    elif isinstance(content, (bytes, bytearray)):
        f.write(content)
    else:
        content(f)


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


# ---- the user's files, worded through `fail` ----------------------------------------------------

def status(path, fail) -> os.stat_result | None:
    """os.stat of `path` (through links), None when nothing is there; a name the system cannot
    look up (too long, a NUL byte) raised through `fail`."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        raise fail(f"cannot be looked at ({_why(e)})", "") from None


def open_regular(path, limit: int, what: str, fail):
    """`path` (through links) opened for binary reading, if it is a regular file of at most
    `limit` bytes."""
    try:
        return os.fdopen(open_fd(path, limit=limit), "rb")
    except FileNotFoundError:
        raise fail("no such file", "") from None
    except NotRegular as e:
        raise fail(f"is {kind(e.mode)}, not a regular file; rnndsl reads {what} only from regular files",
                   "give the path of a file") from None
    except TooBig as e:
        raise too_big(e.size, limit, what, fail) from None
    except (OSError, ValueError) as e:
        raise fail(f"cannot be opened ({_why(e)})", "") from None


def read_regular(path, limit: int, what: str, fail) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked again while reading)."""
    with open_regular(path, limit, what, fail) as f:
        try:
            return read_bounded(f, limit)
        except TooBig:
            raise too_big(None, limit, what, fail) from None
        except OSError as e:
            raise fail(f"cannot be read ({e.strerror})", "") from None


def too_big(actual: int | None, limit: int, what: str, fail) -> Exception:
    have = f"is {size(actual)} ({actual:,} bytes)" if actual is not None else "is larger than that"
    return fail(f"{have}; the limit for {what} is {size(limit)}",
                "is this the right file? (docs/security.md lists the limits)")


def write_file(path, text: str, fail) -> None:
    """Write `text` to `path`, a new file or a regular writable one, atomically and durably; it
    refuses a folder, a FIFO, a device node (even /dev/null, even as root), a symbolic link and
    a read-only file."""
    target = Path(path)
    try:
        check_replaceable(target)
    except (OSError, ValueError, Refused) as e:
        raise _unwritable(target, e, fail) from None
    if not target.parent.is_dir():
        raise fail(f"cannot be written: the folder {target.parent} does not exist", "create it first")
    try:
        replace_atomically(target, text, f".{target.name}", durable=True)
    except NoTemp as e:
        raise fail(f"cannot be written: no file can be made in {target.parent} ({e.strerror})", "") from None
    except Refused as e:
        raise _unwritable(target, e, fail) from None
    except OSError as e:
        raise fail(f"cannot be written ({e.strerror})", "") from None


def _unwritable(target: Path, e: Exception, fail) -> Exception:
    """`fail` for what check_replaceable raised about `target`."""
    if isinstance(e, ReadOnly):
        return fail("is read-only; rnndsl does not replace it",
                    "choose another name, or make it writable first (chmod u+w)")
    if isinstance(e, NotRegular) and stat.S_ISLNK(e.mode):
        return fail(f"is a symbolic link (to {os.readlink(target)}); rnndsl does not write "
                    "through links", "give the path of the file itself, or remove the link first")
    if isinstance(e, NotRegular):
        return fail(f"is {kind(e.mode)}, not a regular file; rnndsl writes only regular files",
                    "give a new file name, or the name of a file to replace")
    return fail(f"cannot be looked at ({_why(e)})", "")


def _why(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)
