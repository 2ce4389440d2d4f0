"""Data parallelism over the batch, for the cores NumPy's elementwise work leaves idle.

A batch is cut into contiguous shares of sequences; this process runs the first share and each
worker process (rnndsl/runtime/worker.py) one other, every one with a single BLAS thread, and the
shares' losses and gradients are combined exactly as one pass over the whole batch would give
them (up to rounding): the mean loss is a mean over sequences, so each share's gradient counts
with its share of the sequences. Each share is trimmed to its own longest sequence.

Processes, not threads: a step of an LSTM is ~30 NumPy calls of a few microseconds, and two
threads hand the GIL back and forth so often that they run slower than one; two processes
run 1.3-1.5 times faster than one with 2-thread BLAS (benchmarks/cores.py, docs/benchmarks.md).
Parameters and gradients go through shared memory where the OS has memfd (Linux), the inputs
and everything else through the workers' pipes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from ..core import limits
from ..backends.numpy import runtime as numpy_runtime
from .worker import Region, recv, run, send

_WORKER = Path(__file__).with_name("worker.py")
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerError(RuntimeError):
    """A worker process failed or died; the pool has been shut down (the next call restarts it)."""


class Workers:
    """`count` processes (this one and count - 1 workers) for one compiled model. Workers start
    on the first batch large enough to share, and stop at close() or when this process ends."""

    def __init__(self, model, count: int):
        if not 1 <= count <= limits.MAX_WORKERS:
            raise ValueError(f"workers must be from 1 to {limits.MAX_WORKERS}, not {count}")
        self.model, self.count = model, count
        self.procs: list = []
        self.params = None             # shared memory (Linux): parameters for every worker, and
        self.grads: dict = {}          # each worker's gradients (pid -> Region)
        self._controller = None
        self.worker_seconds = None     # the last worker's compute time for its share (diagnostics)
        self._lock = threading.Lock()   # one step at a time through the pipes

    def step(self, params: dict, batch, carry: dict | None, truncate: int | None, grad: bool):
        """(mean loss, per-sequence losses, gradients, final states) for one checked Batch; from
        several threads, one after another (the workers answer in order)."""
        with self._lock:
            return self._step(params, batch, carry, truncate, grad)

    def _step(self, params: dict, batch, carry: dict | None, truncate: int | None, grad: bool):
        shares = _shares(batch.size, self.count)
        params = {k: np.asarray(v, self.model.dtype) for k, v in params.items()}
        if len(shares) == 1:
            return _combine([_run_here(self.model, params, _share(self.model.spec, batch, carry, 0, batch.size),
                                       truncate, grad)], [batch.size])
        if len(self.procs) < len(shares) - 1:
            self._start(len(shares) - 1)
        done = False
        try:
            head = {"op": "run", "dtype": self.model.dtype.name, "truncate": truncate, "grad": grad}
            if self.params is not None:
                for k, v in params.items():
                    np.copyto(self.params.arrays[k], v)
            sent = {} if self.params is not None else params
            for proc, (lo, hi) in zip(self.procs, shares[1:]):
                self._send(proc, head, _message(sent, _share(self.model.spec, batch, carry, lo, hi)))
            with self._blas().limit(limits=1, user_api="blas"):       # the other cores are busy
                parts = [_run_here(self.model, params, _share(self.model.spec, batch, carry, *shares[0]),
                                   truncate, grad)]
            parts += [self._answer(proc, grad) for proc in self.procs[:len(shares) - 1]]
            done = True
        finally:
            if not done:                 # answers may be left in the pipes: start afresh next time
                self.close(kill=True)
        return _combine(parts, [hi - lo for lo, hi in shares])

    def _blas(self) -> ThreadpoolController:
        """The BLAS libraries found once (finding them takes 0.5 ms: too long for every step)."""
        if self._controller is None:
            self._controller = ThreadpoolController()
        return self._controller

    def _start(self, n: int) -> None:
        env = dict(os.environ, **_ONE_THREAD)
        if os.environ.get("RNNDSL_KEEP_MEMORY", "1") != "0":
            env.update(numpy_runtime.KEEP_MEMORY_ENV)
        layout = [(p.name, self.model.dtype, p.type.dims) for p in self.model.spec.params]
        if self.params is None and hasattr(os, "memfd_create"):
            self.params = Region(layout)
        new = []
        for _ in range(n - len(self.procs)):
            grads = Region(layout) if self.params is not None else None
            fds = (self.params.fd, grads.fd) if grads else ()
            proc = subprocess.Popen([sys.executable, str(_WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    env=env, pass_fds=fds)
            if grads:
                self.grads[proc.pid] = grads
            new.append(proc)
        self.procs += new
        for proc in new:
            _widen(proc.stdin), _widen(proc.stdout)
        try:
            for proc in new:
                shared = ({"params": self.params.describe(), "grads": self.grads[proc.pid].describe()}
                          if proc.pid in self.grads else None)
                self._send(proc, {"op": "load", "source": self.model.source,
                                  "name": f"<rnndsl {self.model.spec.name}>", "shared": shared})
            for proc in new:
                self._answer(proc)
        except BaseException:
            self.close()
            raise

    def _send(self, proc, header: dict, arrays: dict | None = None) -> None:
        try:
            send(proc.stdin, header, arrays)
        except OSError as e:
            self._gone(proc, e)

    def _answer(self, proc, grad: bool = False) -> tuple:
        try:
            header, arrays = recv(proc.stdout)
        except (EOFError, OSError, ValueError) as e:
            self._gone(proc, e)
        if "error" in header:
            self.close()
            raise WorkerError(f"a worker process failed: {header['error']}\n{header['traceback']}")
        self.worker_seconds = header.get("seconds")
        if grad and proc.pid in self.grads:             # the gradients are in shared memory
            arrays.update({f"g:{k}": v for k, v in self.grads[proc.pid].arrays.items()})
        return header.get("loss"), arrays

    def _gone(self, proc, error: Exception):
        code = proc.poll()
        self.close()
        raise WorkerError(f"a worker process stopped answering ({error}; exit code {code}): killed, or out "
                          "of memory? Run with one worker (--workers 1) to see the error in this process") from None

    def close(self, kill: bool = False) -> None:
        """Stop the workers: closing their stdin ends them once idle; `kill` (after an error or
        Ctrl-C, when they may be mid-share) or a stuck one is killed."""
        procs, self.procs = self.procs, []
        for proc in procs if kill else ():
            proc.kill()
        for proc in procs:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        regions, self.grads = list(self.grads.values()), {}
        if self.params is not None:
            regions.append(self.params)
            self.params = None
        for region in regions:
            region.close()

    def __del__(self):
        try:
            self.close()
        except Exception:          # at interpreter exit: the workers see their stdin close anyway
            pass


def _widen(stream) -> None:
    """A 1 MiB pipe (Linux; the default 64 KiB makes a parameter set a hundred round trips)."""
    try:
        import fcntl
        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _shares(size: int, count: int) -> list:
    """[(lo, hi)] contiguous row ranges, as even as possible, none empty."""
    n = max(1, min(count, size))
    bounds = [size * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _share(spec, batch, carry: dict | None, lo: int, hi: int) -> tuple:
    """(inputs, lengths, carry) of sequences lo..hi, each axis cut to their longest."""
    lengths = {axis: np.asarray(ls[lo:hi]) for axis, ls in batch.lengths.items()}
    steps = {axis: max(1, int(ls.max())) for axis, ls in lengths.items()}
    inputs = {}
    for inp in spec.all_inputs:
        a = batch.arrays[inp.name]
        inputs[inp.name] = a[:steps[inp.axis], lo:hi] if inp.axis else a[lo:hi]
    return inputs, lengths, ({k: np.asarray(v)[lo:hi] for k, v in carry.items()} if carry else None)


def _message(params: dict, share: tuple) -> dict:
    inputs, lengths, carry = share
    arrays = {f"p:{k}": v for k, v in params.items()}
    arrays.update({f"i:{k}": v for k, v in inputs.items()})
    arrays.update({f"l:{k}": v for k, v in lengths.items()})
    arrays.update({f"c:{k}": v for k, v in (carry or {}).items()})
    return arrays


def _run_here(model, params: dict, share: tuple, truncate, grad: bool) -> tuple:
    """This process's share, through the workers' own code: (loss, {"losses", "g:..", "f:.."})."""
    header = {"dtype": model.dtype.name, "truncate": truncate, "grad": grad}
    answer, out = run(vars(model.module), header, _message(params, share), None, model.buffers())
    return answer["loss"], out


def _combine(parts: list, sizes: list) -> tuple:
    """(loss, losses, grads, final) of the whole batch from its shares' answers."""
    total = sum(sizes)
    losses = np.concatenate([out["losses"] for _, out in parts])
    grads, final = {}, {}
    for (_, out), size in zip(parts, sizes):
        for key, value in out.items():
            kind, _, name = key.partition(":")
            if kind == "g":
                share = value * (size / total)
                grads[name] = share if name not in grads else grads[name] + share
    for key in parts[0][1]:
        if key.startswith("f:"):
            final[key[2:]] = np.concatenate([out[key] for _, out in parts])
    return float(losses.mean()), losses, grads, final
