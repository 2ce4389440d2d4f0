"""Code emitters over the scheduled program (installed as `rnndsl.backends`), found by name.

Each backend is a subpackage with `emit_module(program, spec_name, spec_file, dtype) -> source`
and `load(source, name) -> module`. Backends import the program IR, never the other way round;
the registry imports a backend only when it is asked for, so `import rnndsl` never needs cupy.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    name: str
    package: str          # the subpackage implementing emit_module and load
    doc: str
    needs: str = ""       # a module it runs on besides NumPy (an optional extra)
    extra: str = ""       # the pip extra that installs it
    kernels: bool = False  # runs each Kernel item as one loop (the scheduler then sinks work into them)


# fastest first: the default is the first one installed
REGISTRY = {b.name: b for b in [
    Backend("numba", "numba", "each elementwise kernel one loop compiled by numba; GEMMs in NumPy",
            needs="numba", extra="fast", kernels=True),
    Backend("numpy", "numpy", "NumPy calls, one per op, in a Python loop per recurrence"),
    # never the default (default() looks only at the first): it needs a GPU, not only CuPy
    Backend("cupy", "cupy", "each elementwise kernel one CUDA kernel, GEMMs on cuBLAS, through CuPy on a GPU",
            needs="cupy", extra="gpu", kernels=True),
]}


def names() -> tuple:
    """The backends `--backend` accepts."""
    return tuple(REGISTRY)


def available(name: str) -> bool:
    needs = REGISTRY[name].needs
    return not needs or importlib.util.find_spec(needs) is not None


def default() -> str:
    """$RNNDSL_BACKEND if set, else the fastest backend installed (saying once when that is not
    the fastest there is)."""
    chosen = os.environ.get("RNNDSL_BACKEND", "")
    if chosen:
        return chosen
    best = next(iter(REGISTRY.values()))
    if available(best.name):
        return best.name
    warnings.warn(f"{best.needs} is not installed, so rnndsl uses the NumPy backend, which is slower; "
                  f"pip install 'rnndsl[{best.extra}]' adds it", RuntimeWarning, stacklevel=3)
    return "numpy"


def runnable(name: str | None) -> str:
    """The backend a recorded run reopens with: its own where installed, else the default (the
    backends agree to rounding; a run trained with numba samples on a machine without it)."""
    return name if name in REGISTRY and available(name) else default()


def runs_kernels(name: str) -> bool:
    return REGISTRY[name].kernels


def emitter(name: str):
    """The backend's package for emitting only: what it runs on need not be installed."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}")
    return importlib.import_module(f"{__name__}.{REGISTRY[name].package}")


def get(name: str):
    """The backend's package (its emit_module and load); ValueError naming the choices, or
    saying what to install."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}")
    b = REGISTRY[name]
    if not available(name):
        raise ValueError(f"the {name} backend needs {b.needs}, which is not installed: "
                         f"pip install 'rnndsl[{b.extra}]', or choose --backend numpy")
    return importlib.import_module(f"{__name__}.{b.package}")
