"""A worker process of rnndsl.runtime.parallel, and the message format both sides speak.

Run as a script (`python rnndsl/runtime/worker.py`), so that it imports NumPy and nothing of rnndsl:
it holds one emitted module and runs its forward and backward passes on the share of each
batch it is sent, with one BLAS thread (the parent sets the environment). It reads requests
from stdin and answers on stdout, one at a time; it exits when stdin closes, so it never
outlives its parent. Ctrl-C goes to the parent alone, which then closes the pipes.

A message is an 8-byte little-endian header length, a JSON header, and the raw bytes of the
arrays the header lists as [key, dtype, shape]. No pickle: a message can only carry numbers.
"""
import json
import mmap
import os
import signal
import struct
import sys
import time
import traceback

import numpy as np

_KINDS = "biuf"          # bool, ints, floats: the only dtypes a message may carry


def send(stream, header: dict, arrays: dict | None = None) -> None:
    arrays = {k: np.ascontiguousarray(v) for k, v in (arrays or {}).items()}
    head = dict(header, arrays=[[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()])
    text = json.dumps(head).encode()
    stream.write(struct.pack("<Q", len(text)) + text)
    for a in arrays.values():
        stream.write(memoryview(a).cast("B") if a.size else b"")
    stream.flush()


def recv(stream) -> tuple:
    """(header, {key: array}); EOFError when the other side has gone."""
    size = _read(stream, 8)
    header = json.loads(_read(stream, struct.unpack("<Q", size)[0]))
    arrays = {}
    for key, dtype, shape in header.pop("arrays"):
        dtype = np.dtype(dtype)
        if dtype.kind not in _KINDS:
            raise ValueError(f"message array {key} has dtype {dtype}; only numbers travel")
        a = np.empty(shape, dtype)
        view = memoryview(a).cast("B") if a.size else memoryview(b"")
        got = 0
        while got < len(view):
            n = stream.readinto(view[got:])
            if not n:
                raise EOFError("the other side closed the pipe mid-message")
            got += n
        arrays[key] = a
    return header, arrays


def _read(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the other side closed the pipe")
    return data


def split(arrays: dict) -> dict:
    """{"p:W": a, "i:x": b} -> {"p": {"W": a}, "i": {"x": b}}."""
    parts: dict = {}
    for key, a in arrays.items():
        kind, name = key.split(":", 1)
        parts.setdefault(kind, {})[name] = a
    return parts


class Region:
    """Arrays laid out in one shared-memory file (Linux memfd) that both processes map: the
    parameters the parent writes once per step for every worker, and the gradients a worker
    writes back, without going through the pipes (22 MB each way for a 512-unit LSTM)."""

    def __init__(self, layout: list, fd: int | None = None):
        self.layout, offsets, size = layout, [], 0
        for _, dtype, shape in layout:
            offsets.append(size)
            size += -(-int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize // 64) * 64
        if fd is None:
            fd = os.memfd_create("rnndsl")
            os.ftruncate(fd, max(size, 1))
        self.fd, self.map = fd, mmap.mmap(fd, max(size, 1))
        self.arrays = {name: np.ndarray(shape, dtype, buffer=self.map, offset=off)
                       for (name, dtype, shape), off in zip(layout, offsets)}

    def describe(self) -> dict:
        return {"fd": self.fd, "layout": [[n, np.dtype(d).str, list(s)] for n, d, s in self.layout]}

    @classmethod
    def attach(cls, described: dict) -> "Region":
        return cls([(n, d, tuple(s)) for n, d, s in described["layout"]], described["fd"])

    def close(self) -> None:
        self.arrays = {}
        try:
            self.map.close()
        except BufferError:           # a view is still alive somewhere: the mapping goes with it
            pass
        os.close(self.fd)


def run(module: dict, header: dict, arrays: dict, shared: dict | None = None,
        buffers: dict | None = None) -> tuple:
    """One share of a batch: forward (and backward); the answer message. With `shared`
    regions the parameters are read from, and the gradients written to, shared memory.
    `buffers`: the caller's adjoint buffers for backward(), kept between its calls."""
    parts = split(arrays)
    params, inputs, lengths = parts.get("p", {}), parts.get("i", {}), parts.get("l", {})
    if shared:
        params = shared["params"].arrays
    carry = parts.get("c") or None
    tape = module["forward"](params, inputs, lengths, np.dtype(header["dtype"]), carry)
    out = {"losses": np.asarray(tape["_loss"])}
    out.update({f"f:{k}": v for k, v in tape["_final"].items()})
    if header["grad"]:
        grads = module["backward"](params, tape, header["truncate"], buffers)
        if shared:
            for k, v in grads.items():
                np.copyto(shared["grads"].arrays[k], v)
        else:
            out.update({f"g:{k}": v for k, v in grads.items()})
    return {"loss": float(tape["_total_loss"])}, out


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (EOFError, BrokenPipeError):          # the parent has gone or given up on this answer
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())    # nothing left to flush at exit
    return 0


def serve(stdin, stdout) -> None:
    module: dict = {}
    shared: dict = {}
    buffers: dict = {}           # this process's adjoint buffers, reused from batch to batch
    while True:
        header, arrays = recv(stdin)
        try:
            if header["op"] == "load":
                module, buffers = {}, {}
                exec(compile(header["source"], header.get("name", "<rnndsl model>"), "exec"), module)
                shared = {k: Region.attach(v) for k, v in (header.get("shared") or {}).items()}
                send(stdout, {"ok": True})
            else:
                start = time.perf_counter()
                answer, out = run(module, header, arrays, shared, buffers)
                send(stdout, dict(answer, seconds=time.perf_counter() - start), out)
        except BrokenPipeError:
            raise
        except Exception as e:          # the parent raises it with the worker's traceback
            send(stdout, {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})


if __name__ == "__main__":
    sys.exit(main())
