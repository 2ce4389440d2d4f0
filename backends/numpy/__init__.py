"""The NumPy backend: the program as one standalone Python module calling NumPy (emit.py,
passes.py, helpers.py), loaded and cached by runtime.py."""
from .emit import emit_module  # noqa: F401
from .runtime import load  # noqa: F401
