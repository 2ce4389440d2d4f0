"""Where the time of one rnndsl forward+backward goes: GEMM, elementwise kernels, overhead.

    python benchmarks/timesplit.py --shape lstm            # one of run.py's shapes
    python benchmarks/timesplit.py --shape elman --cprofile

The emitted module's GEMM entry points (`matmul`, `matmul_vjp`), its other kernels (sigmoid,
tanh_vjp, cross_entropy, shift, ...) and every `xp.<function>` it calls are wrapped with timers
(the outermost wrapped call counts, so a kernel's own NumPy calls are not counted twice);
what is left is the interpreter, indexing (`h[t-1]`), in-place operators (`d_c[t] += v`),
page faults they take on fresh memory and the timers' own cost (under a microsecond per
call). Minor page faults per call count the memory the call gets fresh from the kernel. A second run of the same program with
every size 1 (B=1, I=H=K=1) gives the part of the time that does not depend on sizes at all:
Python and NumPy call overhead. The GEMM table compares each GEMM shape the module ran with
this machine's NumPy speed for that shape with contiguous operands.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as runner  # noqa: E402

from rnndsl.tools import bench  # noqa: E402

GEMM_NAMES = ("matmul", "matmul_vjp", "gemm", "xp.matmul", "xp.dot", "xp.einsum", "xp.tensordot")
ENTRY = ("forward", "backward", "loss_and_grad")


class Timers:
    """Accumulated seconds and calls per (category, name); only outermost calls count."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.gemm_shapes = defaultdict(lambda: [0.0, 0])
        self.depth = 0

    def wrap(self, category: str, name: str, fn):
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self.depth -= 1
            dt = time.perf_counter() - start
            self.seconds[category, name] += dt
            self.calls[category, name] += 1
            if category == "GEMM":
                arrays = args[0:2] if name.startswith("xp.") else args[1:3]
                key = (name,) + tuple(getattr(a, "shape", None) for a in arrays) + (kwargs.get("side"),)
                self.gemm_shapes[key][0] += dt
                self.gemm_shapes[key][1] += 1
            return out
        return timed


class XpProxy:
    """The module's `xp` with every function timed: ufuncs as elementwise, the rest as
    allocation and indexing helpers."""

    def __init__(self, xp, timers: Timers):
        self._xp, self._timers, self._cache = xp, timers, {}

    def __getattr__(self, name):
        if name not in self._cache:
            value = getattr(self._xp, name)
            if callable(value) and not isinstance(value, type):
                category = ("GEMM" if f"xp.{name}" in GEMM_NAMES else "elementwise (xp ufuncs)"
                            if isinstance(value, np.ufunc) else "numpy other (alloc, where)")
                value = self._timers.wrap(category, f"xp.{name}", value)
            self._cache[name] = value
        return self._cache[name]


def instrument(module, timers: Timers) -> dict:
    """Replace the module's kernels and xp with timed ones; returns what to restore."""
    saved = {}
    for name, value in list(vars(module).items()):
        if callable(value) and getattr(value, "__module__", None) == module.__name__ and name not in ENTRY:
            saved[name] = value
            category = "GEMM" if name.lstrip("_") in GEMM_NAMES else "kernels (elementwise, reductions)"
            setattr(module, name, timers.wrap(category, name.lstrip("_"), value))
    saved["_xp"] = module._xp                 # the passes call globals as _name (backends/numpy/emit.py)
    module._xp = XpProxy(module._xp, timers)
    return saved


def split(shape: runner.Shape, repeat: int) -> dict:
    """Times of the plain and instrumented forward+backward, and the timers."""
    run = bench.prepare(runner.REPO / shape.spec, shape.T, shape.B, shape.dims)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    plain = bench.time_fn(run["train"], repeat, warmup=1)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (repeat + 1)
    timers = Timers()
    module = run["model"].module
    saved = instrument(module, timers)
    try:
        bench.time_fn(run["train"], 1, warmup=0)          # warm the proxy's cache
        timers.__init__()
        start = time.perf_counter()
        for _ in range(repeat):
            run["train"]()
        instrumented = (time.perf_counter() - start) / repeat
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
    tiny = runner.Shape(shape.name, shape.spec, shape.kind, shape.T, 1, 1, 1,
                        K=2 if shape.kind == "deepspeech" else 1,     # CTC: a blank and a label
                        bidirectional=shape.bidirectional, input_dim=shape.input_dim)
    tiny_run = bench.prepare(runner.REPO / tiny.spec, tiny.T, tiny.B, tiny.dims)
    fixed = bench.time_fn(tiny_run["train"], max(repeat, 20), warmup=2)
    return {"plain": plain, "instrumented": instrumented, "faults": faults, "timers": timers, "repeat": repeat,
            "fixed": fixed, "run": run}


def text(shape: runner.Shape, r: dict) -> str:
    timers, n = r["timers"], r["repeat"]
    by_cat = defaultdict(float)
    for (cat, _), s in timers.seconds.items():
        by_cat[cat] += s / n
    total = r["instrumented"]
    rest = total - sum(by_cat.values())
    calls = sum(timers.calls.values()) / n
    lines = [f"## {shape.name}: T={shape.T} B={shape.B} I={shape.I} H={shape.H} K={shape.K}"
             f"{' bidirectional' if shape.bidirectional else ''}", "",
             f"forward+backward: {r['plain'].ms:.1f} ms plain, {1e3 * total:.1f} ms instrumented "
             f"({calls:.0f} timed calls); {r['faults']:.0f} minor page faults per call "
             f"({r['faults'] * resource.getpagesize() / 1e6:.0f} MB of memory touched for the first time)", "",
             "| part | ms | share |", "|---|---|---|"]
    for cat, s in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cat} | {1e3 * s:.1f} | {100 * s / total:.0f}% |")
    lines.append(f"| interpreter, indexing, in-place `+=`, timers | {1e3 * rest:.1f} | {100 * rest / total:.0f}% |")
    lines += ["", f"same program with every size 1 (pure call overhead): {r['fixed'].ms:.1f} ms "
              f"= {100 * r['fixed'].median / r['plain'].median:.0f}% of the plain time", "",
              "| GEMM call | calls | ms | GFLOP/s | NumPy GFLOP/s, same shape |", "|---|---|---|---|---|"]
    for key, (s, c) in sorted(timers.gemm_shapes.items(), key=lambda kv: -kv[1][0]):
        flop, shape_mnk = _gemm_flops(key)
        ref = bench.numpy_gemm_gflops(*shape_mnk) if shape_mnk else 0
        rate = flop * c / s / 1e9 if s and flop else 0
        label = f"{key[0]}{key[1:3]}" + (f" side={key[3]}" if key[3] is not None else "")
        lines.append(f"| {label} | {c // n} | {1e3 * s / n:.1f} | {rate:.1f} | {ref:.1f} |")
    top = sorted(timers.seconds.items(), key=lambda kv: -kv[1])[:12]
    lines += ["", "| function | calls | ms |", "|---|---|---|"]
    lines += [f"| {name} | {timers.calls[cat, name] // n} | {1e3 * s / n:.1f} |" for (cat, name), s in top]
    return "\n".join(lines)


def _gemm_flops(key: tuple) -> tuple:
    """(flops, (m, n, k)) of a matmul / matmul_vjp call from its argument shapes."""
    name, a, b, side = key
    if a is None or b is None or len(a) > 3 or len(b) > 3:
        return 0, None
    if name.startswith("xp.") or name == "gemm":     # a (..., k) @ b (k, n)
        if len(b) != 2:
            return 0, None
        rows = int(np.prod(a[:-1]))
        return 2 * rows * a[-1] * b[-1], (rows, b[-1], a[-1])
    if name == "matmul":                     # W (m, n) @ batch (..., n) -> (..., m)
        rows = int(np.prod(b[:-1]))
        return 2 * rows * a[0] * a[1], (rows, a[0], a[1])
    rows = int(np.prod(a[:-1]))              # dout (..., m)
    if side == 1:                            # dx = dout @ W, W (m, n)
        return 2 * rows * b[0] * b[1], (rows, b[1], b[0])
    return 2 * rows * a[-1] * b[-1], (a[-1], b[-1], rows)    # dW = dout^T x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [s.name for s in runner.SHAPES]
    ap.add_argument("--shape", default="lstm", choices=names)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions")
    args = ap.parse_args(argv)
    shape = next(s for s in runner.SHAPES if s.name == args.shape)
    with bench.thread_cap(args.threads):
        r = split(shape, args.repeat)
        print(text(shape, r))
        if args.cprofile:
            prof = cProfile.Profile()
            prof.runcall(r["run"]["train"])
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
            print("\n```\n" + out.getvalue().strip() + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
