"""Loading emitted modules: compiled once per source text, registered with linecache so
tracebacks and pdb show the generated code. Loading one also asks glibc to keep freed memory
(keep_freed_memory), which the emitted code's speed depends on."""
from __future__ import annotations

import ctypes
import hashlib
import linecache
import os
import platform
import re
import threading
import types


_CACHE: dict = {}
_LOCK = threading.Lock()         # two threads compiling one spec get one module

# glibc's malloc tunables as environment variables (read at process start: for worker processes)
KEEP_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def load(source: str, name: str) -> types.ModuleType:
    """The module for `source` (cached by its hash: the same spec compiles once)."""
    key = hashlib.sha256(source.encode()).hexdigest()
    with _LOCK:
        module = _CACHE.get(key)
        if module is None:
            module = _CACHE[key] = _execute(source, name, key)
    return module


def _execute(source: str, name: str, key: str) -> types.ModuleType:
    """A fresh module running `source`. It holds only code: whatever a call keeps between calls
    (backward()'s buffers) is the caller's, so models sharing this module share no state."""
    keep_freed_memory()
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(name))[:64]     # the spec's name: untrusted text
    filename = f"<rnndsl:{name}:{key[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"rnndsl_generated_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)     # generated code only
    return module


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 32 MiB in the process instead of handing them back to
    the kernel. By default a forward pass's tape (arrays of (T, B, ...)) is returned when the
    call ends, and the next call takes a page fault for every 4 KiB of it again: 5,000 faults
    and a fifth of an LSTM's training step on this machine (docs/benchmarks.md). The process
    then holds on to its peak memory, as a training process does anyway. RNNDSL_KEEP_MEMORY=0
    leaves malloc alone; elsewhere than glibc this does nothing. True if the settings took."""
    if os.environ.get("RNNDSL_KEEP_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
