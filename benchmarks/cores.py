"""What the second core gives NumPy code on this machine, measured.

    python benchmarks/cores.py                  # about a minute, with nothing else running

PyTorch's LSTM gets 1.8 times faster from a second thread; rnndsl's emitted NumPy code gets
only what 2-thread OpenBLAS gives its GEMMs, because NumPy's elementwise work runs on one core.
The ways to put the second core to work from Python are timed here:

1. one float32 ufunc on a (16, 256) block, called over and over from two threads at once
   (NumPy releases the GIL inside the loop) against the same calls one after the other;
2. the LSTM benchmark (T=100 B=32 I=128 H=256, fwd+bwd) with the batch cut in two halves,
   each half run by the emitted code with 1-thread BLAS: in two threads, and in two processes
   (a spawned worker that holds its half's data, so only a "go" crosses per call); against
   the plain call with 2-thread BLAS and against PyTorch with 2 threads, all alternating.

Each half's own module namespace keeps the two threads off each other's scratch buffers.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from rnndsl.tools import bench  # noqa: E402

SPEC, T, B, DIMS = ROOT / "specs" / "lstm.yaml", 100, 32, {"I": 128, "H": 256, "K": 64}


def ufunc_in_threads(calls: int = 4000) -> list:
    """(name, serial seconds, two-thread seconds) for the same 2 x `calls` ufunc calls."""
    rng = np.random.default_rng(0)
    rows = []
    for name, fn in (("tanh", lambda x, o: np.tanh(x, out=o)), ("multiply", lambda x, o: np.multiply(x, x, out=o))):
        def work():
            x = rng.standard_normal((16, 256)).astype(np.float32)
            out = np.empty_like(x)
            for _ in range(calls):
                fn(x, out)
        start = time.perf_counter()
        work(), work()
        serial = time.perf_counter() - start
        threads = [threading.Thread(target=work) for _ in range(2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rows.append((name, serial, time.perf_counter() - start))
    return rows


def half(arrays: dict, lengths: dict, part: int) -> tuple:
    lo, hi = (0, B // 2) if part == 0 else (B // 2, B)
    return ({k: np.ascontiguousarray(v[:, lo:hi]) for k, v in arrays.items()},
            {k: np.ascontiguousarray(v[lo:hi]) for k, v in lengths.items()})


def namespace(source: str) -> dict:
    ns: dict = {}
    exec(compile(source, "<rnndsl module>", "exec"), ns)
    return ns


def worker(conn, source, params, arrays, lengths, dtype):
    """A process that runs fwd+bwd on its half of the batch each time it is told to."""
    ns = namespace(source)
    while conn.recv():
        ns["backward"](params, ns["forward"](params, arrays, lengths, dtype))
        conn.send(True)


def lstm_split(repeat: int = 15) -> dict:
    from threadpoolctl import ThreadpoolController

    run = bench.prepare(SPEC, T, B, DIMS)
    model, params = run["model"], run["params"]
    dtype, source = model.dtype, model.source
    halves = [half(run["arrays"], run["lengths"], p) for p in (0, 1)]
    spaces = [namespace(source), namespace(source)]
    blas = ThreadpoolController()

    def one_half(p):
        ns = spaces[p]
        return ns["backward"](params, ns["forward"](params, *halves[p], dtype))

    def two_threads():
        with blas.limit(limits=1, user_api="blas"):
            other = threading.Thread(target=one_half, args=(1,))
            other.start()
            one_half(0)
            other.join()

    os.environ["OPENBLAS_NUM_THREADS"] = "1"          # read when the worker imports NumPy
    conn, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=worker, args=(child, source, params, *halves[1], dtype),
                                           daemon=True)
    proc.start()
    del os.environ["OPENBLAS_NUM_THREADS"]

    def two_processes():
        with blas.limit(limits=1, user_api="blas"):
            conn.send(True)
            one_half(0)
            conn.recv()

    def one_half_alone():
        with blas.limit(limits=1, user_api="blas"):
            one_half(0)

    fns = {"plain (2-thread BLAS)": run["train"], "halves in 2 threads": two_threads,
           "halves in 2 processes": two_processes, "one half alone (1 thread)": one_half_alone}
    ref = bench.torch_reference("lstm", T, B, DIMS["I"], DIMS["H"], K=DIMS["K"])
    if ref is not None:
        fns["PyTorch (2 threads)"] = ref["train"]
    two_processes()
    try:
        return bench.interleave(fns, repeat, warmup=3, settle=0.1)
    finally:
        conn.send(False)
        proc.join(5)


def main() -> int:
    print("## one ufunc on (16, 256) float32 from two threads\n")
    print("| ufunc | 2 x 4000 calls serial ms | in 2 threads ms | speed-up |\n|---|---|---|---|")
    for name, serial, par in ufunc_in_threads():
        print(f"| {name} | {serial * 1e3:.1f} | {par * 1e3:.1f} | {serial / par:.2f} |")
    print(f"\n## LSTM T={T} B={B} I={DIMS['I']} H={DIMS['H']} fwd+bwd, batch cut in two halves\n")
    print("| how | ms |\n|---|---|")
    for name, timing in lstm_split().items():
        print(f"| {name} | {timing.ms:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
