"""A stand-in for CuPy on a machine without a GPU (tests only): NumPy underneath, refusing what
CuPy refuses, and RawKernel running the CUDA source on the CPU.

* `ndarray`, a device array: its data is a NumPy array, but it never turns into one implicitly
  (np.asarray raises TypeError, as CuPy's does), the namespace's functions refuse NumPy arrays
  (only asarray and array take them: a copy to the device), reductions give 0-d arrays, NumPy
  functions and ufuncs called on it dispatch as CuPy's __array_function__ and __array_ufunc__ do
  (to this namespace's function of the same name, else TypeError), and ufunc.at is refused.
  Host code that would fail on a GPU (np.* on device arrays, host and device arrays mixed)
  fails here too.
* `RawKernel` (tests/cuda_standin_kernels.py) runs a kernel's CUDA source on the CPU.
"""
from __future__ import annotations

import sys
import types

import numpy as np

from cuda_standin_kernels import RawKernel, StandinError  # noqa: F401  (StandinError: for tests)


# ---- device arrays --------------------------------------------------------------------------

class ndarray:
    """A device array (see the module docstring)."""
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, data: np.ndarray):
        self._a = data

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self) -> np.ndarray:
        return self._a.copy()

    def __repr__(self) -> str:
        return f"standin.{self._a!r}"

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def scatter_add(self, slices, value) -> None:
        np.add.at(self._a, _unwrap(slices, "scatter_add"), _unwrap(value, "scatter_add"))

    def __getattr__(self, name):
        if name not in METHODS:
            raise AttributeError(f"the stand-in's ndarray has no method {name!r}")
        return _device_function(getattr(self._a, name), f"ndarray.{name}")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method not in ("__call__", "reduce", "accumulate"):
            return NotImplemented          # ufunc.at: not on a device
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return _device_function(fn, f"{ufunc.__name__}.{method}")(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        impl = FUNCTIONS.get(func.__name__)
        return NotImplemented if impl is None else _device_function(impl, func.__name__)(*args, **kwargs)


METHODS = set("""reshape sum mean max min all any astype fill copy cumsum argmax argmin clip ravel
    transpose swapaxes squeeze prod item tolist view flatten nonzero sort argsort std var take repeat dot""".split())


def _operator(name: str):
    def op(self, *other):
        result = _device_function(getattr(self._a, name), name)(*other)
        return self if name.startswith("__i") else result
    op.__name__ = name
    return op


_ONE_FORM = {"lt", "le", "gt", "ge", "eq", "ne", "neg", "pos", "abs", "invert"}
for _name in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split() + sorted(_ONE_FORM):
    for _form in [f"__{_name}__"] + ([] if _name in _ONE_FORM else [f"__r{_name}__", f"__i{_name}__"]):
        setattr(ndarray, _form, _operator(_form))


def _unwrap(value, where: str, host_ok: bool = False):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        if host_ok:
            return value
        raise TypeError(f"{where}: a NumPy array where CuPy takes only device arrays "
                        "(Unsupported type <class 'numpy.ndarray'>)")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, host_ok) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, where, host_ok) for k, v in value.items()}
    return value


def _wrap(value, outs=()):
    for out in outs:
        if value is out._a:
            return out
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):
        return ndarray(np.asarray(value))          # CuPy's reductions give 0-d arrays
    if isinstance(value, tuple):
        return tuple(_wrap(v, outs) for v in value)
    return value


def _device_function(fn, name: str, host_ok: bool = False):
    def call(*args, **kwargs):
        out = kwargs.get("out")
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if isinstance(o, ndarray)]
        return _wrap(fn(*_unwrap(args, name, host_ok), **_unwrap(kwargs, name, host_ok)), outs)
    call.__name__ = name
    return call


# Functions CuPy has under these names (a module's code may call only these)
FUNCTION_NAMES = """empty empty_like zeros zeros_like ones ones_like full full_like arange eye identity
    linspace copy ascontiguousarray reshape ravel broadcast_to broadcast_arrays concatenate stack
    transpose moveaxis swapaxes expand_dims squeeze pad take take_along_axis where clip shape
    atleast_1d tile repeat flip roll add subtract multiply divide true_divide floor_divide negative
    power remainder absolute abs sign exp expm1 log log2 log10 log1p sqrt square reciprocal tanh
    sinh cosh sin cos maximum minimum fmax fmin logaddexp greater greater_equal less less_equal
    equal not_equal logical_and logical_or logical_not isfinite isnan isinf floor ceil sum prod
    mean max min amax amin argmax argmin cumsum einsum tensordot matmul dot outer all any
    count_nonzero nonzero sort argsort diff""".split()
FUNCTIONS = {n: getattr(np, n) for n in FUNCTION_NAMES}


def asarray(a, dtype=None, order=None):
    """A device array: host data copied over; a device array of that dtype as it is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return ndarray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def as_strided(x, shape=None, strides=None):
    return ndarray(np.lib.stride_tricks.as_strided(_unwrap(x, "as_strided"), shape, strides, writeable=False))


# ---- the namespace ----------------------------------------------------------------------------

def make() -> types.ModuleType:
    """A fresh stand-in `cupy` (its own kernels, and a log of the kernels launched)."""
    cp = types.ModuleType("cupy")
    for name, fn in FUNCTIONS.items():
        setattr(cp, name, _device_function(fn, name))
    for name in ("float16", "float32", "float64", "int32", "int64", "bool_", "dtype", "inf", "nan", "newaxis", "pi"):
        setattr(cp, name, getattr(np, name))
    cp.ndarray, cp.asarray, cp.array = ndarray, asarray, asarray
    cp.asnumpy = lambda a: a.get() if isinstance(a, ndarray) else np.asarray(a)
    cp.get_array_module = lambda *args: cp
    cp.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=as_strided))
    cp.launches = []
    cp.RawKernel = lambda code, name, options=(), **kw: RawKernel(code, name, cp.launches)
    return cp


def load(source: str, name: str = "standin_module") -> tuple:
    """(module, stand-in): an emitted CuPy module executed with the stand-in as `cupy`."""
    cp = make()
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = cp
    try:
        module = types.ModuleType(name)
        exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved
    return module, cp
