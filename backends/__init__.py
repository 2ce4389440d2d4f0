"""Code emitters over the scheduled program (installed as `rnndsl.backends`), found by name.

Each backend is a subpackage with `emit_module(program, spec_name, spec_file, dtype) -> source`
and `load(source, name) -> module`. Backends import the program IR, never the other way round;
the registry imports a backend only when it is asked for, so `import rnndsl` never needs cupy.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    name: str
    package: str          # the subpackage implementing emit_module and load
    doc: str


REGISTRY = {b.name: b for b in [
    Backend("numpy", "numpy", "NumPy calls, one per op, in a Python loop per recurrence"),
]}


def names() -> tuple:
    """The backends `--backend` accepts."""
    return tuple(REGISTRY)


def get(name: str):
    """The backend's package (its emit_module and load); ValueError naming the choices."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}")
    return importlib.import_module(f"{__name__}.{REGISTRY[name].package}")
