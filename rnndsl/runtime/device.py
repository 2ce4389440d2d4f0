"""Where a compiled model's arrays live, the host (NumPy) or a device (CuPy), and the moves
between the two.

    array_module(module)     the array module an emitted module computes with: its `_xp`
    to_device(xp, value)     host arrays (or a dict of them) -> xp's arrays; xp's own pass through
    to_host(value)           any array (or a dict of them) -> NumPy arrays
    put(xp, dst, src)        dst[...] = src, a host array, in place and in dst's array module
    require(backend)         BackendUnavailable unless the backend's module (and device) work here
    runnable(recorded, ...)  the backend a recorded run reopens with

Training, sampling and evaluation keep parameters and optimizer state in the module's array
module, hand host data to the module (which moves each batch once), and bring to the host only
what they must: a scalar or two per step, checkpoints (written from host copies, so the format
is the same whichever backend trained), the scores sampling draws from.
"""
from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from .. import backends
from ..core.errors import Diagnostic, SpecError

PICK_CUPY = ("pip install 'rnndsl[gpu]' installs CuPy for CUDA 13 (cupy-cuda13x); for a CUDA 12 "
             "driver install cupy-cuda12x instead (nvidia-smi shows the driver's CUDA version; "
             "docs/cli.md, section GPU)")


def array_module(module):
    """The array module of an emitted module (numpy, cupy, or a test's stand-in)."""
    return getattr(module, "_xp", np)


def to_device(xp, value):
    """`value` (an array or a dict of them) as xp's arrays: a host array is copied over, an
    array already in xp is returned as it is. With NumPy this is to_host."""
    if isinstance(value, dict):
        return {k: to_device(xp, v) for k, v in value.items()}
    return to_host(value) if xp is np else xp.asarray(value)


def to_host(value):
    """`value` (an array or a dict of them) as NumPy arrays; a NumPy array is returned as it is
    (no copy). Device arrays copy themselves over with .get(), as CuPy's do."""
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, np.generic, int, float, bool)):
        return np.asarray(value)
    get = getattr(value, "get", None)
    return np.asarray(get() if callable(get) else value)


def put(xp, dst, src) -> None:
    """dst[...] = src, where src is a host array and dst lives in xp: cast only within a kind
    (float64 -> float32, never float -> int), as np.copyto(casting="same_kind") does."""
    src = np.asarray(src)
    if xp is np:
        np.copyto(dst, src, casting="same_kind")
        return
    if not np.can_cast(src.dtype, dst.dtype, "same_kind"):
        raise TypeError(f"cannot cast {src.dtype} to {dst.dtype} in place")
    dst[...] = xp.asarray(src, dst.dtype)


# ---- is a backend usable here? -----------------------------------------------------------------

class BackendUnavailable(SpecError):
    """A backend that cannot run on this machine (its module not installed, no usable GPU). The
    command line prints it and exits 2, before anything is written."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(Diagnostic(None, message, hint))


def require(name: str) -> None:
    """BackendUnavailable unless backend `name` can run here: its module installed and, for a
    GPU backend, importable with a device it can use. An unknown name is left to backends.get."""
    b = backends.REGISTRY.get(name)
    if b is None or not b.needs:
        return
    if importlib.util.find_spec(b.needs) is None:
        raise _not_installed(b)
    probe = PROBES.get(b.needs)
    if probe is not None:
        probe(b)


def _not_installed(b) -> BackendUnavailable:
    if b.needs in PROBES:
        return BackendUnavailable(f"the {b.name} backend runs on an NVIDIA GPU through {_shown(b)}, which is "
                                  "not installed in this Python",
                                  f"{PICK_CUPY}; without a GPU, choose --backend numba or --backend numpy")
    return BackendUnavailable(f"the {b.name} backend needs {b.needs}, which is not installed",
                              f"pip install 'rnndsl[{b.extra}]', or choose --backend numpy")


def _probe_cupy(b) -> None:
    """Import CuPy and allocate on device 0: the first thing training does, and what fails
    without a GPU, without a driver, or with a driver older than the CuPy build's CUDA."""
    try:
        cupy = importlib.import_module("cupy")
        count = cupy.cuda.runtime.getDeviceCount()
        if count:
            cupy.zeros(1, dtype=cupy.float32)
    except Exception as exc:            # CuPy's own errors (CUDARuntimeError, ImportError, ...) say why
        raise _no_device(b, f"{type(exc).__name__}: {exc}") from None
    if not count:
        raise _no_device(b, "it finds no CUDA device")


def _no_device(b, why: str) -> BackendUnavailable:
    return BackendUnavailable(f"the {b.name} backend needs a CUDA GPU, and {_shown(b)} is installed but cannot "
                              f"use one here: {_one_line(why)}",
                              "check that nvidia-smi lists a GPU and that the CuPy build matches the driver's "
                              "CUDA version (cupy-cuda13x for CUDA 13, cupy-cuda12x for CUDA 12; docs/cli.md, "
                              "section GPU); without a GPU, choose --backend numba or --backend numpy")


def _shown(b) -> str:
    return SHOWN.get(b.needs, b.needs)


def _one_line(text: str, most: int = 400) -> str:
    """A library's message on one line: CuPy's import errors come framed in lines of '='."""
    lines = [line.strip() for line in text.splitlines() if line.strip().strip("=")]
    joined = " ".join(lines)
    return joined if len(joined) <= most else joined[:most - 3] + "..."


PROBES = {"cupy": _probe_cupy}      # the module a backend needs -> the check that its device works
SHOWN = {"cupy": "CuPy"}            # its name in messages


def runnable(recorded: str | None, chosen: str | None = None) -> str:
    """The backend a recorded run reopens with: `chosen` when given (BackendUnavailable if it
    cannot run here), else the run's own where it can run here, else the default. A run trained
    on a GPU samples, evaluates and resumes on a machine without one, and the other way round."""
    if chosen:
        require(chosen)
        return chosen
    name = backends.runnable(recorded)
    try:
        require(name)
    except BackendUnavailable:
        return backends.default()
    return name
