"""An optional accelerator for float32: tanh and sigmoid compiled with numba, vectorised.

NumPy's float32 `tanh` and `exp` are scalar loops in its x86-64 builds without AVX-512
(4.0 and 2.2 ns per element on this project's machines, against 0.23 ns for a multiply), and
in an LSTM step they are most of the elementwise time. These replacements are NumPy ufuncs
compiled by numba (`pip install rnndsl[fast]`): a clamped rational approximation of tanh,
within 3e-7 of it everywhere (float32 resolves 6e-8 near 1), about 4 times faster on a
(16, 768) block; sigmoid is 0.5 + 0.5 tanh(x / 2) through the same approximation (so below
about 1e-8 it is absolutely, not relatively, accurate). NaN stays NaN and infinities go to
the limits (only FMA contraction is allowed, not fast-math). float64 always uses NumPy.

`install(module)` gives an emitted module the kernels: its global `xp` becomes NumPy with
`tanh` dispatching on dtype, and its `sigmoid`, `tanh_vjp` and `sigmoid_vjp` kernels likewise
(the two VJPs compiled from kernels.py's formulas, one pass each where NumPy takes three). It
imports only NumPy (numba and rnndsl.core.kernels when it compiles), so worker processes can load it
by path. RNNDSL_ACCEL=0 turns it off.
"""
import functools
import importlib.util
import os
import warnings

import numpy as np

F32 = np.dtype(np.float32)
_COMPILED: dict = {}


def _tanh(v):
    """tanh(v) in float32: v * P(v^2) / Q(v^2) on [-9, 9], where tanh is within 2e-8 of +-1
    outside (coefficients of the [13/6] minimax approximation that Eigen uses)."""
    if v > np.float32(9.0):
        v = np.float32(9.0)
    elif v < np.float32(-9.0):
        v = np.float32(-9.0)
    v2 = v * v
    p = np.float32(-2.76076847742355e-16)
    p = p * v2 + np.float32(2.00018790482477e-13)
    p = p * v2 + np.float32(-8.60467152213735e-11)
    p = p * v2 + np.float32(5.12229709037114e-08)
    p = p * v2 + np.float32(1.48572235717979e-05)
    p = p * v2 + np.float32(6.37261928875436e-04)
    p = p * v2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * v2 + np.float32(1.18534705686654e-04)
    q = q * v2 + np.float32(2.26843463243900e-03)
    q = q * v2 + np.float32(4.89352518554385e-03)
    return v * p / q


def enabled() -> bool:
    """numba is installed (not imported: that takes 0.3 s, paid at the first float32 call)."""
    return os.environ.get("RNNDSL_ACCEL", "1") != "0" and importlib.util.find_spec("numba") is not None


def compiled() -> dict:
    """{"tanh", "sigmoid", "tanh_vjp", "sigmoid_vjp": ufunc} over float32, compiled on first use:
    about 1 s the first time on a machine, 0.8 s from numba's disk cache in later processes.
    Empty, with one warning, if numba fails (then NumPy does the work)."""
    if not _COMPILED:
        try:
            _COMPILED.update(_compile())
        except Exception as e:           # a numba that does not work with this NumPy, a read-only cache
            warnings.warn(f"rnndsl.runtime.accel: numba could not compile the float32 kernels ({type(e).__name__}: "
                          f"{e}); using NumPy's. Set RNNDSL_ACCEL=0 to skip trying.", RuntimeWarning, stacklevel=3)
            _COMPILED["failed"] = True
    return {} if "failed" in _COMPILED else _COMPILED


def _compile() -> dict:
    """The VJPs are kernels.py's own formulas (their `out=None` path, which numba compiles for
    scalars), one pass where NumPy takes three; tanh and sigmoid are the approximation above."""
    import numba
    kernels = _kernels()
    options = {"fastmath": {"contract"}, "cache": True}
    jit = numba.njit(error_model="numpy", **options)
    tanh, tanh_vjp_of, sigmoid_vjp_of = jit(_tanh), jit(kernels.tanh_vjp), jit(kernels.sigmoid_vjp)

    def sigmoid(v):
        return np.float32(0.5) + np.float32(0.5) * tanh(np.float32(0.5) * v)

    def tanh_vjp(y, dy):
        return tanh_vjp_of(None, y, dy)

    def sigmoid_vjp(y, dy):
        return sigmoid_vjp_of(None, y, dy)
    unary, binary = ["float32(float32)"], ["float32(float32, float32)"]
    return {"tanh": numba.vectorize(unary, **options)(_tanh),
            "sigmoid": numba.vectorize(unary, **options)(sigmoid),
            "tanh_vjp": numba.vectorize(binary, **options)(tanh_vjp),
            "sigmoid_vjp": numba.vectorize(binary, **options)(sigmoid_vjp)}


def _kernels():
    """rnndsl/core/kernels.py (it imports only NumPy): by path when this file was loaded by path, as
    in a worker process, which imports nothing of the rnndsl package."""
    if __package__:
        from ..core import kernels
        return kernels
    spec = importlib.util.spec_from_file_location("rnndsl_kernels", os.path.join(os.path.dirname(__file__), os.pardir, "core", "kernels.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    for name in ("sigmoid", "tanh_vjp", "sigmoid_vjp"):
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
