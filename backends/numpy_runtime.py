"""Loading emitted modules: compiled once per source text, registered with linecache so
tracebacks and pdb show the generated code."""
from __future__ import annotations

import hashlib
import linecache
import types

_CACHE: dict = {}


def load(source: str, name: str) -> types.ModuleType:
    """The module for `source` (cached by its hash: the same spec compiles once)."""
    key = hashlib.sha256(source.encode()).hexdigest()
    module = _CACHE.get(key)
    if module is None:
        filename = f"<rnndsl:{name}:{key[:12]}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(f"rnndsl_generated_{name}")
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)     # generated code only
        _CACHE[key] = module
    return module
