"""Loading numba-backend modules: from a file named by the source's hash, so numba's cache
(`cache=True`, kept beside the file) makes a second process pay no compile time.

The folder is $RNNDSL_CACHE/numba, else ~/.cache/rnndsl/numba; a file there is written once,
atomically (a hard link from a temporary file), and never deleted or replaced by rnndsl (its name is its content's hash): a file of
that name with other content, or a link, is left alone. Where the folder cannot be written,
or holds such a file, the module runs from memory, without numba's disk cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
import types
from pathlib import Path

from ..numpy import runtime as numpy_runtime

_CACHE: dict = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    root = os.environ.get("RNNDSL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rnndsl")
    return Path(root) / "numba"


def load(source: str, name: str) -> types.ModuleType:
    """The module for `source` (one per source text and process)."""
    key = hashlib.sha256(source.encode()).hexdigest()
    with _LOCK:
        module = _CACHE.get(key)
        if module is None:
            module = _CACHE[key] = _from_file(source, name, key) or numpy_runtime.load(source, name)
    return module


def _from_file(source: str, name: str, key: str) -> types.ModuleType | None:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", str(name))[:40] + "_" + key[:16]
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rnndsl_{stem}.py"
        if path.is_symlink() or path.exists() and not (path.is_file() and path.read_text() == source):
            return None                   # not the file rnndsl would write: leave it, run from memory
        if not path.exists() and not _write_once(folder, path, source):
            return None                   # someone else's file appeared meanwhile: leave it
    except (OSError, UnicodeDecodeError):
        return None
    numpy_runtime.keep_freed_memory()
    spec = importlib.util.spec_from_file_location(f"rnndsl_numba_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # numba's disk cache finds the module's globals by name
    spec.loader.exec_module(module)
    return module


def _write_once(folder: Path, path: Path, source: str) -> bool:
    """Create `path` whole through a temporary file of ours and a hard link, which (unlike a
    rename) never replaces a file that appeared in the meantime. False if one did (and it is
    not this very text)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rnndsl-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return path.is_file() and not path.is_symlink() and path.read_text() == source
    finally:
        os.unlink(tmp)
