"""cupy.RawKernel on the CPU, for the stand-in CuPy of tests/cuda_standin.py.

`RawKernel` compiles the CUDA source with g++ and a compatibility header (__global__, the block
and thread indices as thread-local variables, __syncthreads() a barrier) and runs each launch
with real threads: every block of the grid at once, each with its threads. A grid-stride kernel
is correct for any launch shape, so at most 3 blocks of 3 threads run: enough for the stride
loops, for columns shared unevenly among threads, and for the barriers. Arguments are checked as
a GPU cannot: each array C-contiguous and of the parameter's type, no array the kernel writes
overlapping another argument (the parameters are __restrict__), scalars of the parameter's type
(CuPy passes a Python int or bool as a 64-bit integer). Each array runs between canaries (NaN
for floats): a read outside it poisons the result, a write outside it is an error.

Builds are cached by their source's hash in the temporary folder; all kernels that exist when a
launch needs a build are built together (a module's kernels: one g++ call).

Device arrays are the stand-in's: objects whose NumPy data is `._a`.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

LAUNCH_LIMIT = 3          # blocks per grid and threads per block that run on the CPU


class StandinError(AssertionError):
    """Something that would go wrong on a GPU, found on the CPU."""


COMPAT = r"""
// CUDA built-ins for one host thread of a launch (tests/cuda_standin_kernels.py)
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
        if not hasattr(arg, "_a"):
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
        arrays = [(k, a._a) for k, a in enumerate(a for a in self.args if hasattr(a, "_a"))]
        self.overlapping = {k for k, a in arrays for m, b in arrays if k != m and np.may_share_memory(a, b)}


_CANARY = {"f": np.nan, "i": 2**62, "b": True}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def _intact(canary: np.ndarray) -> bool:
    if canary.dtype.kind == "f":
        return bool(np.isnan(canary).all())
    return bool((canary == _CANARY.get(canary.dtype.kind, 0x5A)).all())
