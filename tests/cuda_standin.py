"""A stand-in for CuPy on a machine without a GPU (tests only): NumPy underneath, refusing what
CuPy refuses, and RawKernel running the CUDA source on the CPU.

* `ndarray`, a device array: its data is a NumPy array, but it never turns into one implicitly
  (np.asarray raises TypeError, as CuPy's does), the namespace's functions refuse NumPy arrays
  (only asarray and array take them: a copy to the device), reductions give 0-d arrays, NumPy
  functions and ufuncs called on it dispatch as CuPy's __array_function__ and __array_ufunc__ do
  (to this namespace's function of the same name, else TypeError), and ufunc.at is refused.
  Host code that would fail on a GPU (np.* on device arrays, host and device arrays mixed)
  fails here too.
* `RawKernel` compiles the CUDA source with g++ and a compatibility header (__global__, the
  block and thread indices as thread-local variables, __syncthreads() a barrier) and runs each
  launch with real threads: every block of the grid at once, each with its threads. A
  grid-stride kernel is correct for any launch shape, so at most 3 blocks of 3 threads run:
  enough for the stride loops, for columns shared unevenly among threads, and for the barriers.
  Arguments are checked as a GPU cannot: each array C-contiguous and of the parameter's type, no
  array the kernel writes overlapping another argument (the parameters are __restrict__),
  scalars of the parameter's type (CuPy passes a Python int or bool as a 64-bit integer). Each
  array runs between canaries (NaN for floats): a read outside it poisons the result, a write
  outside it is an error.

Builds are cached by their source's hash in the temporary folder; all kernels that exist when a
launch needs a build are built together (a module's kernels: one g++ call).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path

import numpy as np

LAUNCH_LIMIT = 3          # blocks per grid and threads per block that run on the CPU


class StandinError(AssertionError):
    """Something that would go wrong on a GPU, found on the CPU."""


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


# ---- kernels ----------------------------------------------------------------------------------

COMPAT = r"""
// CUDA's built-ins for one host thread of a launch (tests/cuda_standin.py)
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <errno.h>
struct uint3 { unsigned int x, y, z; };
static thread_local uint3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
struct _standin_barrier { pthread_mutex_t m; pthread_cond_t c; unsigned count, waiting, generation; };
static thread_local _standin_barrier* _standin_bar;
static int _standin_stuck;                     // a barrier that not every thread of a block reached
static void __syncthreads(void)
{
    _standin_barrier* b = _standin_bar;
    pthread_mutex_lock(&b->m);
    unsigned generation = b->generation;
    if (++b->waiting == b->count) {
        b->waiting = 0;
        b->generation++;
        pthread_cond_broadcast(&b->c);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (generation == b->generation)
            if (pthread_cond_timedwait(&b->c, &b->m, &until) == ETIMEDOUT) {
                __atomic_store_n(&_standin_stuck, 1, __ATOMIC_SEQ_CST);
                break;
            }
    }
    pthread_mutex_unlock(&b->m);
}
struct _standin_thread { void** args; void (*run)(void**); uint3 block, thread, grid, dim; _standin_barrier* bar; };
static void* _standin_entry(void* p)
{
    _standin_thread* t = (_standin_thread*)p;
    blockIdx = t->block; threadIdx = t->thread; gridDim = t->grid; blockDim = t->dim; _standin_bar = t->bar;
    t->run(t->args);
    return 0;
}
static int _standin_launch(unsigned grid, unsigned block, void** args, void (*run)(void**))
{
    _standin_stuck = 0;
    _standin_barrier* bars = new _standin_barrier[grid];
    _standin_thread* threads = new _standin_thread[grid * block];
    pthread_t* ids = new pthread_t[grid * block];
    for (unsigned g = 0; g < grid; g++) {
        pthread_mutex_init(&bars[g].m, 0);
        pthread_cond_init(&bars[g].c, 0);
        bars[g].count = block; bars[g].waiting = 0; bars[g].generation = 0;
    }
    for (unsigned i = 0; i < grid * block; i++) {
        threads[i] = {args, run, {i / block, 0, 0}, {i % block, 0, 0}, {grid, 1, 1}, {block, 1, 1}, &bars[i / block]};
        pthread_create(&ids[i], 0, _standin_entry, &threads[i]);
    }
    for (unsigned i = 0; i < grid * block; i++)
        pthread_join(ids[i], 0);
    delete[] bars; delete[] threads; delete[] ids;
    return _standin_stuck;
}
"""

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
_CTYPES = {"float": np.float32, "double": np.float64, "bool": np.bool_, "long long": np.int64, "int": np.int32,
           "unsigned int": np.uint32}


def signatures(code: str) -> dict:
    """Kernel name -> [(C type without qualifiers, numpy dtype, pointer, const)] of its parameters."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)
    out = {}
    for name, params in _KERNEL.findall(code):
        parsed = []
        for p in params.split(","):
            words = p.replace("*", " * ").split()[:-1]
            ctype = " ".join(w for w in words if w not in ("const", "__restrict__", "*"))
            parsed.append((ctype, _CTYPES[ctype], "*" in words, "const" in words))
        out[name] = parsed
    return out


def _launchers(code: str) -> str:
    """For each kernel, a host entry point that runs it on the threads of a launch."""
    out = []
    for name, params in signatures(code).items():
        casts = ", ".join(f"*({'const ' if const else ''}{ctype}{'*' if ptr else ''}*)a[{i}]"
                          for i, (ctype, _, ptr, const) in enumerate(params))
        out.append(f"static void _standin_run_{name}(void** a) {{ {name}({casts}); }}\n"
                   f'extern "C" int _standin_launch_{name}(unsigned g, unsigned b, void** a) '
                   f"{{ return _standin_launch(g, b, a, _standin_run_{name}); }}")
    return "\n".join(out)


_BUILT: dict = {}                 # source -> loaded library
_PENDING: list = []               # sources of kernels made but not built yet
_LOCK = threading.Lock()


def build(sources: list) -> ctypes.CDLL:
    """One shared library holding every source (each guards its own preamble), cached by hash."""
    text = "\n".join([COMPAT] + [s + "\n" + _launchers(s) for s in sources])
    key = hashlib.sha256(text.encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / f"rnndsl-cuda-standin-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    lib = folder / f"{key}.so"
    if not lib.exists():
        src = folder / f"{key}.cpp"
        src.write_text(text)
        tmp = folder / f"{key}.{os.getpid()}.so"
        run = subprocess.run(["g++", "-std=c++14", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread",
                              "-Wall", "-Wno-unused-function", "-Werror", str(src), "-o", str(tmp)],
                             capture_output=True, text=True)
        if run.returncode:
            raise StandinError(f"g++ could not build the kernels:\n{run.stderr[:4000]}")
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


def _library(code: str) -> ctypes.CDLL:
    with _LOCK:
        if code not in _BUILT:
            batch = list(dict.fromkeys([code] + [s for s in _PENDING if s not in _BUILT]))
            lib = build(batch)
            for s in batch:
                _BUILT[s] = lib
            _PENDING.clear()
        return _BUILT[code]


class RawKernel:
    """cupy.RawKernel on the CPU (see the module docstring)."""

    def __init__(self, code: str, name: str, log: list):
        self.code, self.name, self.log = code, name, log
        self.params = signatures(code).get(name)
        if self.params is None:
            raise StandinError(f"no extern \"C\" __global__ function {name} in the source")
        with _LOCK:
            if code not in _BUILT and code not in _PENDING:
                _PENDING.append(code)

    def __call__(self, grid, block, args, shared_mem=0):
        grid, block = tuple(grid), tuple(block)
        if len(grid) != 1 or len(block) != 1 or not 1 <= grid[0] < 2**31 or not 1 <= block[0] <= 1024:
            raise StandinError(f"{self.name}: launch of grid {grid}, block {block}")
        if len(args) != len(self.params):
            raise StandinError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        self.log.append(self.name)
        launch = getattr(_library(self.code), f"_standin_launch_{self.name}")
        with Arguments(self.name, self.params, args) as argv:
            stuck = launch(ctypes.c_uint(min(grid[0], LAUNCH_LIMIT)), ctypes.c_uint(min(block[0], LAUNCH_LIMIT)), argv)
        if stuck:
            raise StandinError(f"{self.name}: a __syncthreads() that not every thread of a block reached")


class Arguments:
    """A launch's argument vector: arrays copied between canaries, scalars as their C type."""

    def __init__(self, name: str, params: list, args: tuple):
        self.name, self.params, self.args = name, params, args

    def __enter__(self):
        self.keep, self.copies = [], []
        argv = (ctypes.c_void_p * len(self.args))()
        self._check_overlaps()
        for i, (arg, (ctype, dtype, ptr, const)) in enumerate(zip(self.args, self.params)):
            holder = self._pointer(i, arg, dtype, const) if ptr else self._scalar(i, arg, ctype, dtype)
            self.keep.append(holder)
            argv[i] = ctypes.addressof(holder)
        return argv

    def __exit__(self, *exc):
        for i, (arg, padded, pad, const) in enumerate(self.copies):
            canary = np.concatenate([padded[:pad], padded[pad + arg.size:]])
            if not const and not _intact(canary):
                raise StandinError(f"{self.name} wrote outside an array of shape {arg.shape}")
            data = padded[pad:pad + arg.size].reshape(arg.shape)
            if not const and not _same(data, arg._a):
                if i in self.overlapping:
                    raise StandinError(f"{self.name} wrote an argument that overlaps another (they are __restrict__)")
                arg._a[...] = data
        return False

    def _pointer(self, i: int, arg, dtype, const: bool):
        if not isinstance(arg, ndarray):
            raise StandinError(f"{self.name} argument {i}: {type(arg).__name__} for a pointer (a device array)")
        if arg.dtype != dtype or not arg.flags.c_contiguous:
            raise StandinError(f"{self.name} argument {i}: {arg.dtype} array, "
                               f"{'' if arg.flags.c_contiguous else 'not '}contiguous, for a {np.dtype(dtype)} pointer")
        pad = max(64, arg.size)
        padded = np.empty(arg.size + 2 * pad, dtype)
        padded[...] = _CANARY.get(np.dtype(dtype).kind, 0x5A)
        padded[pad:pad + arg.size] = arg._a.reshape(-1)
        self.copies.append((arg, padded, pad, const))
        return ctypes.c_void_p(padded.ctypes.data + pad * padded.itemsize)

    def _scalar(self, i: int, arg, ctype: str, dtype):
        value = np.int64(arg) if isinstance(arg, int) else np.float64(arg) if isinstance(arg, float) else arg
        if not isinstance(value, np.generic) or value.dtype != dtype:
            raise StandinError(f"{self.name} argument {i}: {type(arg).__name__} for a `{ctype}` parameter")
        return np.ctypeslib.as_ctypes_type(dtype)(value.item())

    def _check_overlaps(self) -> None:
        """The written arrays that overlap another argument: an error if the kernel writes them
        (a kernel may pass a row it does not touch, behind a guard, where another is read)."""
        arrays = [(k, a._a) for k, a in enumerate(a for a in self.args if isinstance(a, ndarray))]
        self.overlapping = {k for k, a in arrays for m, b in arrays if k != m and np.may_share_memory(a, b)}


_CANARY = {"f": np.nan, "i": 2**62, "b": True}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def _intact(canary: np.ndarray) -> bool:
    if canary.dtype.kind == "f":
        return bool(np.isnan(canary).all())
    return bool((canary == _CANARY.get(canary.dtype.kind, 0x5A)).all())
