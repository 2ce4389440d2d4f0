"""A stand-in device for tests without a GPU: an array module (`xp`) whose arrays are NumPy's
underneath but a different type, which NumPy refuses as it refuses CuPy's (no __array__, no
ufuncs, no array functions) and which refuses host arrays in its own arithmetic. Code that
forgets to move an array to the device, or back to the host, fails here as it would on a GPU.

    xp              the array module: NumPy's functions over DeviceArrays, and asnumpy
    DeviceArray     an array "on the device"; .get() copies it to the host, as CuPy's does
    OnDevice        an emitted module wrapped to behave as a GPU backend's: parameters must be
                    device arrays, inputs may be host or device arrays, the tape and the
                    gradients come back on the device, the loss as a Python float
    register(mp)    a backend "standin" (the NumPy backend's code, run through OnDevice)

`xp.counts` counts the transfers: "to_device" (host arrays moved over), "get" (arrays copied
back) and "scalar" (one number read back: float(), int(), bool()).
"""
from __future__ import annotations

import operator
from collections import Counter
from types import SimpleNamespace

import numpy as np


class DeviceArray:
    __array_ufunc__ = None                 # np.add(device, ...) and host @ device raise TypeError

    def __init__(self, a: np.ndarray):
        self.a = a

    def __array__(self, *args, **kwargs):
        raise TypeError("implicit conversion of a device array to NumPy: copy it with .get() (to_host)")

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented              # np.concatenate([device, ...]) raises TypeError

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    ndim = property(lambda self: self.a.ndim)
    size = property(lambda self: self.a.size)

    def get(self) -> np.ndarray:
        xp.counts["get"] += 1
        return self.a.copy()

    def __len__(self):
        return len(self.a)

    def __getitem__(self, key):
        return wrap(self.a[operand(key)])

    def __setitem__(self, key, value):
        self.a[operand(key)] = operand(value)

    def _scalar(self, kind):
        xp.counts["scalar"] += 1
        return kind(self.a)

    __float__ = lambda self: self._scalar(float)
    __int__ = lambda self: self._scalar(int)
    __bool__ = lambda self: self._scalar(bool)

    def __getattr__(self, name):          # methods (astype, reshape, sum, argmax, ...) stay on the device
        if name.startswith("__"):
            raise AttributeError(name)     # never __array_interface__: NumPy would read the memory
        attr = getattr(self.a, name)
        if not callable(attr):
            return wrap(attr)
        return lambda *args, **kwargs: wrap(attr(*operand(args), **operand(kwargs)))


def _binary(op, reflected=False):
    if reflected:
        return lambda self, other: wrap(op(operand(other), self.a))
    return lambda self, other: wrap(op(self.a, operand(other)))


def _inplace(op):
    def apply(self, other):
        op(self.a, operand(other))
        return self
    return apply


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    _op = getattr(operator, _name if _name not in ("and", "or") else _name + "_")
    setattr(DeviceArray, f"__{_name}__", _binary(_op))
    setattr(DeviceArray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(DeviceArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(DeviceArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__", (lambda op: lambda self: wrap(op(self.a)))(getattr(operator, _name)))


def operand(value):
    """A value as NumPy sees it inside the device; a host array is refused (as CuPy refuses
    one), scalars and NumPy scalars pass."""
    if isinstance(value, DeviceArray):
        return value.a
    if isinstance(value, np.ndarray):
        raise TypeError("a host array in a device operation: move it with to_device first")
    if isinstance(value, (tuple, list)):
        return type(value)(operand(v) for v in value)
    if isinstance(value, dict):
        return {k: operand(v) for k, v in value.items()}
    return value


def wrap(value):
    """NumPy results as device values: arrays and NumPy scalars (CuPy returns 0-d arrays)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    return value


class _ArrayModule:
    """The stand-in's `xp`: asarray moves host data over (counted); every other function is
    NumPy's over device operands; dtypes and constants are NumPy's."""
    ndarray = DeviceArray

    def __init__(self):
        self.counts = Counter()

    def asarray(self, a, dtype=None):
        if isinstance(a, DeviceArray):
            return a if dtype is None or a.dtype == np.dtype(dtype) else DeviceArray(a.a.astype(dtype))
        self.counts["to_device"] += 1
        return DeviceArray(np.array(a, dtype=dtype))

    def asnumpy(self, a):
        return a.get()

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr
        return lambda *args, **kwargs: wrap(attr(*operand(args), **operand(kwargs)))


xp = _ArrayModule()


def _tree(value, leaf):
    if isinstance(value, dict):
        return {k: _tree(v, leaf) for k, v in value.items()}
    return leaf(value)


def _from_device(value):
    return value.a if isinstance(value, DeviceArray) else value


def _required_on_device(params: dict) -> dict:
    host = sorted(k for k, v in params.items() if not isinstance(v, DeviceArray))
    if host:
        raise TypeError(f"parameters on the host: {', '.join(host)} (move them to the device once, not per call)")
    return _tree(params, _from_device)


def _inputs(value):
    """Host inputs are moved over (counted), as a GPU module moves each batch once."""
    return _tree(value, lambda v: _from_device(xp.asarray(v)) if isinstance(v, np.ndarray) else _from_device(v))


class OnDevice:
    """An emitted NumPy module behaving as a GPU backend's (see the module's docstring)."""

    def __init__(self, host_module):
        self.host, self._xp = host_module, xp

    def forward(self, params, inputs, lengths=None, dtype=np.float64, carry=None):
        tape = self.host.forward(_required_on_device(params), _inputs(inputs), lengths, dtype,
                                 None if carry is None else _inputs(carry))
        return _tree(tape, wrap)

    def backward(self, params, tape, truncate=None, buffers=None):
        grads = self.host.backward(_required_on_device(params), _tree(tape, _from_device), truncate, buffers)
        return _tree(grads, wrap)


def register(monkeypatch, name: str = "standin") -> str:
    """Add backend `name` to the registry: the NumPy backend's code, run on the stand-in device."""
    from rnndsl import backends
    numpy_backend = backends.get("numpy")
    monkeypatch.setitem(backends.REGISTRY, name, backends.Backend(name, "numpy", "NumPy on a stand-in device"))
    real_get = backends.get
    fake = SimpleNamespace(emit_module=numpy_backend.emit_module,
                           load=lambda source, module_name: OnDevice(numpy_backend.load(source, module_name)))
    monkeypatch.setattr(backends, "get", lambda which: fake if which == name else real_get(which))
    return name
