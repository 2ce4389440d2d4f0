"""An optional accelerator for float32: tanh, sigmoid and their VJPs compiled with numba.

NumPy's float32 `tanh` and `exp` are scalar loops in its x86-64 builds without AVX-512
(4.0 and 2.2 ns per element on this project's machines, against 0.23 ns for a multiply), and
in an LSTM step they are most of the elementwise time. These replacements are NumPy ufuncs
compiled by numba (`pip install rnndsl[fast]`) from the ops' scalar templates
(rnndsl/core/templates.py, rendered by rnndsl/core/scalar.py for float32 numba), so no
formula is written here: the float32 numba form of the `tanh` primitive is a clamped rational
approximation, within 3e-7 of tanh everywhere (float32 resolves 6e-8 near 1), about 4 times
faster than NumPy's on a (16, 768) block, and `sigmoid`'s is 0.5 + 0.5 tanh(x / 2) through it
(so below about 1e-8 it is absolutely, not relatively, accurate); each VJP is one pass where
NumPy takes three. NaN stays NaN and infinities go to the limits (only FMA contraction is
allowed, not fast-math). float64 always uses NumPy.

`install(module)` gives an emitted module the kernels: its global `xp` becomes NumPy with
`tanh` dispatching on dtype, and its `sigmoid`, `tanh_vjp` and `sigmoid_vjp` kernels likewise.
It imports only NumPy (numba and rnndsl/core's scalar.py and templates.py when it compiles),
so worker processes can load it by path. RNNDSL_ACCEL=0 turns it off.
"""
import functools
import importlib
import importlib.util
import os
import sys
import warnings

import numpy as np

F32 = np.dtype(np.float32)
_COMPILED: dict = {}


KERNELS = ("tanh", "sigmoid", "tanh_vjp", "sigmoid_vjp")


def enabled() -> bool:
    """numba is installed (not imported: that takes 0.3 s, paid at the first float32 call)."""
    return os.environ.get("RNNDSL_ACCEL", "1") != "0" and importlib.util.find_spec("numba") is not None


def compiled() -> dict:
    """{"tanh", "sigmoid", "tanh_vjp", "sigmoid_vjp": ufunc} over float32, compiled on first use
    (about 0.5 s; generated code, so not cached on disk). Empty, with one warning, if numba
    fails (then NumPy does the work)."""
    if not _COMPILED:
        try:
            _COMPILED.update(_compile())
        except Exception as e:           # a numba that does not work with this NumPy
            warnings.warn(f"rnndsl.runtime.accel: numba could not compile the float32 kernels ({type(e).__name__}: "
                          f"{e}); using NumPy's. Set RNNDSL_ACCEL=0 to skip trying.", RuntimeWarning, stacklevel=3)
            _COMPILED["failed"] = True
    return {} if "failed" in _COMPILED else _COMPILED


def _compile() -> dict:
    """Each kernel is its op's template as float32 Python (scalar.py_source), vectorised: the
    primitives' float32 numba forms (the rational tanh) come from scalar.py's table."""
    import numba
    scalar, templates = _core("scalar"), _core("templates").TEMPLATES
    options = {"fastmath": {"contract"}}
    space = {"np": np, **{n: numba.njit(f, **options) for n, f in scalar.PY_HELPERS.items()}}
    ufuncs = {}
    for name in KERNELS:
        t = templates[name]
        exec(scalar.py_source(name, t, np.float32), space)
        signature = f"float32({', '.join(['float32'] * len(t.args))})"
        ufuncs[name] = numba.vectorize([signature], **options)(space[name])
    return ufuncs


def _core(name: str):
    """rnndsl/core/<name>.py. In a worker process, which imports nothing of the rnndsl package
    (this file was loaded by path), rnndsl/core/ is loaded by path as a package of its own: its
    modules import only NumPy and each other."""
    if __package__:
        return importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.core.{name}")
    if "rnndsl_core" not in sys.modules:
        core = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "core")
        spec = importlib.util.spec_from_file_location("rnndsl_core", os.path.join(core, "__init__.py"),
                                                      submodule_search_locations=[core])
        sys.modules["rnndsl_core"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["rnndsl_core"])
    return importlib.import_module(f"rnndsl_core.{name}")


class ArrayModule:
    """NumPy, but with `tanh` taking the compiled kernel for float32 arrays."""

    def __getattr__(self, name):
        value = getattr(np, name)
        setattr(self, name, value)             # found directly from now on
        return value

    def __init__(self):
        self.tanh = functools.partial(_kernel("tanh", lambda xp, x, out=None: np.tanh(x, out=out)), np)


def install(module) -> bool:
    """Switch an emitted module (a module object or its globals dict) to the float32 kernels;
    False (and nothing changed) when numba is missing or RNNDSL_ACCEL=0."""
    if not enabled():
        return False
    space = module if isinstance(module, dict) else module.__dict__
    if space.get("_accelerated"):                    # a cached module, shared by models: once
        return True
    space["_accelerated"] = True
    space["xp"] = space["_xp"] = ArrayModule()       # the passes call globals as _name (emit.py)
    for name in KERNELS[1:]:
        if name in space:
            space[name] = space["_" + name] = _kernel(name, space[name])
    return True


def _kernel(name: str, plain):
    """The kernel `name(xp, *arrays, out=None)`, compiled for float32 arrays and `plain`
    otherwise. A few hundred nanoseconds of dispatch: it runs every step."""
    fast = []                              # the compiled ufunc (or None), looked up at first use

    def kernel(xp, *arrays, out=None):
        if getattr(arrays[0], "dtype", None) == F32 and getattr(arrays[-1], "dtype", None) == F32 \
                and (out is None or out.dtype == F32):
            if not fast:
                fast.append(compiled().get(name))
            if fast[0] is not None:
                return fast[0](*arrays, out=out)
        return plain(xp, *arrays, out=out)
    kernel.__name__ = kernel.__qualname__ = name
    return kernel
